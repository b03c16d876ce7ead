"""Make a host run a system: set the profile, switch-to-configuration GOAL, and have the host
roll itself back when that fails (automatic rollback), when a health check fails, or when the
deployer cannot prove over a new SSH login that it can still get in (magic rollback).

The activation runs detached on the host (the agent's `start`), so a dropped connection cannot
stop it half way. The result is a typed `Activation`, whose words come from what the host says
it runs afterwards, never from what was hoped for.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nixlift.agent.protocol import Agent, Decision, Outcome
from nixlift.errors import NixliftError
from nixlift.events import Emit, Output, Phase
from nixlift.model import Goal, HostState, Stage, Status

#: what switch-to-configuration says when the new system needs a reboot (kernel, initrd, …)
REBOOT_REQUIRED = 100
#: timeout(1)'s status: switch-to-configuration ran past deployment.activationTimeout
TIMED_OUT = 124
#: the agent's status when setting the profile failed
PROFILE_FAILED = 91
#: output lines kept with a failure
TAIL = 25


@dataclass(frozen=True)
class Safety:
    """deployment.autoRollback / magicRollback / confirmTimeout / activationTimeout."""

    auto_rollback: bool = True
    magic_rollback: bool = True
    confirm_timeout: int = 30
    activation_timeout: int = 240


@dataclass(frozen=True)
class Activation:
    """How an activation ended for the host: OK, REBOOT_REQUIRED, FAILED or ROLLED_BACK."""

    status: Status
    error: str | None = None
    hint: str | None = None
    #: the last lines the activation (and its rollback) printed
    detail: str | None = None
    #: whether the host runs systemd (its verdict is one of the health checks)
    systemd: bool = False
    #: what switch-to-configuration printed (dry-activate: what it would do)
    output: str = ""
    #: what went wrong, for machines (`--json`: error.kind): "activation", "not-nixos",
    #: "health-check", "lockout", "confirmation", "rollback"
    kind: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in (Status.OK, Status.REBOOT_REQUIRED)


def needs_activation(goal: Goal, system: str, state: HostState, always_activate: bool) -> bool:
    """NixOps' alwaysActivate semantics: with it off, a host already on the system is left be."""
    if always_activate or goal is Goal.DRY_ACTIVATE:
        return True
    if goal is Goal.SWITCH:
        return not (state.current_system == system and state.profile_system == system)
    if goal is Goal.BOOT:
        return state.profile_system != system
    return state.current_system != system


def _tail(log: str) -> str | None:
    lines = log.rstrip("\n").splitlines()[-TAIL:]
    return "\n".join(lines) or None


#: a health check after activation: returns why it failed (with a hint), or None when it passed
Verify = Callable[[bool], Awaitable["tuple[str, str] | None"]]


async def activate(
    agent: Agent,
    system: str,
    goal: Goal,
    safety: Safety,
    before: HostState,
    emit: Emit,
    verify: Verify,
    *,
    runner: str = "switch-to-configuration",
) -> Activation:
    """Activate, then `verify(systemd)` (the health checks), then, with magic rollback, confirm
    over a new connection. A failure of either goes back (unless rollback is off). `runner`
    "deploy-rs": the system is switched to with its own deploy-rs-activate."""
    name = agent.host.name
    # (os.urandom, not uuid: uuid imports platform, ~5 ms of every deploy's start)
    directory = f"/run/nixlift/act-{os.urandom(6).hex()}"
    # A host that already runs the system cannot be locked out by activating it again: no
    # confirmation over a new login (one SSH handshake less on every unchanged host).
    magic = (
        safety.magic_rollback
        and goal in (Goal.SWITCH, Goal.TEST)
        and before.current_system != system
    )
    auto = safety.auto_rollback and goal in (Goal.SWITCH, Goal.TEST, Goal.BOOT)
    started = await agent.start(
        directory,
        system,
        goal.value,
        set_profile=goal.sets_profile,
        auto_rollback=auto,
        magic=magic,
        confirm_timeout=safety.confirm_timeout,
        activation_timeout=safety.activation_timeout,
        runner=runner,
    )
    if started.refused == "no-deploy-rs-activate":
        return Activation(
            Status.FAILED,
            f"{system} has no deploy-rs-activate; nothing was changed",
            hint="make the system profile with deploy-rs' lib.<system>.activate.nixos",
            kind="not-nixos",
        )
    if started.refused:
        return Activation(
            Status.FAILED,
            f"{system} is not a NixOS system (it has no "
            "nixos-version and bin/switch-to-configuration); nothing was changed",
            hint="the machine's configuration must build a NixOS system.build.toplevel",
            kind="not-nixos",
        )
    if goal is not Goal.DRY_ACTIVATE:  # (its output is the answer: the caller reports it)
        for line in started.log.splitlines():
            emit(Output(name, line))
    tail = _tail(started.log)
    back = _Back(agent, directory, system, before, goal)
    if started.status is None:
        return Activation(
            Status.FAILED,
            f"switch-to-configuration {goal.value} on {name} did not finish "
            f"within {safety.activation_timeout} s",
            detail=tail,
            hint="it goes on running on the host; raise deployment.activationTimeout if it is "
            "just slow",
            kind="activation",
        )
    code = started.status
    if code not in (0, REBOOT_REQUIRED):
        reason = (
            f"switch-to-configuration {goal.value} took longer than activationTimeout"
            if code == TIMED_OUT
            else f"switch-to-configuration {goal.value} exited with {code}"
        )
        if auto:
            return await back.report(
                await agent.decision(directory, 120),
                f"{reason} on {name}",
                "its last output lines say what failed",
                kind="activation",
            )
        return Activation(
            Status.FAILED,
            _failure_message(name, goal, code, safety),
            hint=_failure_hint(code),
            detail=tail,
            kind="activation",
        )
    failed_check = await verify(started.systemd)
    if failed_check is not None:
        why, hint = failed_check
        if magic:
            # the watchdog is waiting for a confirmation: tell it not to wait
            decision = await agent.abort(directory, f"health check failed: {why}")
        elif auto:
            decision = await agent.undo(
                directory, goal.value, goal.sets_profile, f"health check failed: {why}"
            )
        else:
            return Activation(
                Status.FAILED, why, hint=hint, systemd=started.systemd, kind="health-check"
            )
        return await back.report(decision, why, hint, kind="health-check")
    if magic:
        emit(Phase(name, Stage.CONFIRM, "logging in over a new connection"))
        try:
            decision = await agent.confirm(directory, safety.confirm_timeout)
        except NixliftError as e:
            # Locked out, and known at once: the connection still open tells the host to roll
            # back now. If it is gone too, the host decides by itself once the confirmation
            # time is up.
            try:
                decision = await agent.abort(directory, f"no new login possible: {e}")
            except NixliftError:
                decision = await agent.decision(directory, safety.confirm_timeout + 30)
            hint = (
                (e.hint + "; " if e.hint else "") + "the new configuration must keep the "
                "host reachable over SSH (and able to become root)"
            )
            return await back.report(
                decision,
                f"could not log in over a new connection after activation ({e})",
                hint,
                verb="rolled itself back",
                kind="lockout",
            )
        if decision.outcome is Outcome.NO_CANARY:  # the watchdog had decided already: ask what
            decision = await agent.decision(directory, 30)
        if decision.outcome is not Outcome.CONFIRMED:
            return await back.report(
                decision,
                "the host decided before the confirmation arrived",
                "raise deployment.confirmTimeout",
                kind="confirmation",
            )
    status = Status.REBOOT_REQUIRED if code == REBOOT_REQUIRED else Status.OK
    return Activation(status, systemd=started.systemd, output=started.log)


@dataclass(frozen=True)
class _Back:
    """Reports a rollback by what the host runs after it."""

    agent: Agent
    directory: str
    new_system: str
    before: HostState
    goal: Goal

    async def report(
        self, decision: Decision, why: str, hint: str, verb: str = "rolled back", *, kind: str
    ) -> Activation:
        name = self.agent.host.name
        tail = _tail(await self.agent.activation_log(self.directory))
        running = decision.running
        if decision.outcome is Outcome.ROLLED_BACK and (
            running != self.new_system or self.goal is Goal.BOOT
        ):
            if self.goal is Goal.BOOT:
                now = f"{verb}: its boot default is the previous system again"
            elif running is None:
                now = f"{verb}: it runs no system now (none ran before)"
            elif running == self.before.current_system:
                now = f"{verb} to the previous system {running}"
            else:
                now = f"{verb}: it runs {running}"
            return Activation(
                Status.ROLLED_BACK, f"{why}; {name} {now}", hint=hint, detail=tail, kind=kind
            )
        if decision.outcome is Outcome.UNDECIDED:
            return Activation(
                Status.FAILED,
                f"{why}; {name} has not decided whether to roll back",
                hint="the host needs a look: nixlift list-generations",
                detail=tail,
                kind="rollback",
            )
        runs = f"it runs {running}" if running else "it runs no system now"
        return Activation(
            Status.FAILED,
            f"{why}; rolling {name} back failed too: {runs}",
            hint="the host needs a look: nixlift list-generations",
            detail=tail,
            kind="rollback",
        )


def _failure_message(name: str, goal: Goal, code: int, safety: Safety) -> str:
    if code == PROFILE_FAILED:
        return f"setting the system profile on {name} failed"
    if code == TIMED_OUT:
        return (
            f"switch-to-configuration {goal.value} on {name} took longer than "
            f"{safety.activation_timeout} s and was stopped"
        )
    return f"switch-to-configuration {goal.value} on {name} failed with exit status {code}"


def _failure_hint(code: int) -> str:
    if code == PROFILE_FAILED:
        return "its output says why (a full disk, a store path the host lacks)"
    if code == TIMED_OUT:
        return "raise deployment.activationTimeout if it is just slow"
    return (
        "its last output lines (shown with this error) say what failed; the host may be "
        "partly switched: check it, fix the configuration and deploy again"
    )
