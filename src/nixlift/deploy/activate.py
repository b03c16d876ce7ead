"""Make a host run a system: set the profile, switch-to-configuration GOAL, and roll back by
itself when that fails (automatic rollback) or when the deployer cannot prove, over a new SSH
connection, that it can still get in (magic rollback).

The activation runs detached on the host (hostside.sh `start`), so a dropped connection cannot
stop it half way; the deployer waits for its status over the host's master connection.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nixlift.deploy import hostside
from nixlift.deploy.health import HealthCheckError
from nixlift.errors import ActivationError, NixliftError
from nixlift.events import Emit, Output
from nixlift.model import Goal, HostState
from nixlift.transport.ssh import SshSession

NOT_A_SYSTEM = 90
PROFILE_FAILED = 91
#: what switch-to-configuration says when the new system needs a reboot (kernel, initrd, …)
REBOOT_REQUIRED = 100


class RolledBackError(ActivationError):
    """The host went back to the system it ran before: the deploy of this host failed."""


class Outcome(enum.Enum):
    ACTIVATED = "activated"
    REBOOT_REQUIRED = "reboot-required"


@dataclass(frozen=True)
class Safety:
    """deployment.autoRollback / magicRollback / confirmTimeout / activationTimeout."""

    auto_rollback: bool = True
    magic_rollback: bool = True
    confirm_timeout: int = 30
    activation_timeout: int = 240


def needs_activation(goal: Goal, system: str, state: HostState, always_activate: bool) -> bool:
    """NixOps' alwaysActivate semantics: with it off, a host already on the system is left be."""
    if always_activate or goal is Goal.DRY_ACTIVATE:
        return True
    if goal is Goal.SWITCH:
        return not (state.current_system == system and state.profile_system == system)
    if goal is Goal.BOOT:
        return state.profile_system != system
    return state.current_system != system


def _flag(value: bool) -> str:
    return "1" if value else "0"


async def activate(
    session: SshSession,
    system: str,
    goal: Goal,
    safety: Safety,
    emit: Emit,
    confirm: Callable[[str], Awaitable[str]],
    verify: Callable[[bool], Awaitable[None]],
) -> Outcome:
    """Activate, then `verify()` (health checks: raises HealthCheckError), then, with magic
    rollback, `confirm(directory)`: delete the canary over a new connection and return the
    host's decision. A failure of either rolls the host back (unless told not to);
    RolledBackError says it did. `verify` is told whether the host runs systemd."""
    name = session.target.name
    directory = f"/run/nixlift/act-{uuid.uuid4().hex[:12]}"
    magic = safety.magic_rollback and goal in (Goal.SWITCH, Goal.TEST)
    auto = safety.auto_rollback and goal in (Goal.SWITCH, Goal.TEST, Goal.BOOT)
    # One round trip: start it detached, then wait for its status (the host stops it at
    # activation_timeout; this wait ends a little after that).
    waited = await session.run(
        hostside.argv("start", directory, system, goal.value, _flag(goal.sets_profile),
                      _flag(auto), _flag(magic), str(safety.confirm_timeout),
                      str(safety.activation_timeout)),
        what="activating", elevated=True, error=ActivationError,
        timeout=safety.activation_timeout + 30)
    status, _, rest = waited.stdout.partition("\n")
    systemd_line, _, log = rest.partition("\n")
    systemd = systemd_line == "systemd=yes"
    for line in log.splitlines():
        emit(Output(name, line))
    tail = "\n".join(log.splitlines()[-25:])
    if status == "timeout":
        raise ActivationError(
            f"switch-to-configuration {goal.value} on {name} did not finish within "
            f"{safety.activation_timeout} s", stderr_tail=tail, host=name,
            hint="it goes on running on the host; raise deployment.activationTimeout if it is "
                 "just slow")
    code = int(status)
    if code in (0, REBOOT_REQUIRED):
        try:
            await verify(systemd)
        except HealthCheckError as e:
            await _undo(session, directory, goal, magic=magic, auto=auto, error=e)
            raise
        if magic:
            await _confirm(session, directory, safety, confirm)
        return Outcome.REBOOT_REQUIRED if code == REBOOT_REQUIRED else Outcome.ACTIVATED
    if auto:
        outcome = await _outcome(session, directory, 120)
        raise _rolled_back(name, outcome, tail, goal, code)
    if code == NOT_A_SYSTEM:
        message = f"{system} on {name} is not a NixOS system (no bin/switch-to-configuration)"
        hint = "the machine's configuration must build a NixOS system.build.toplevel"
    elif code == PROFILE_FAILED:
        message = f"setting the system profile on {name} failed"
        hint = "the SSH user needs root (deployment.targetUser = \"root\" or passwordless sudo)"
    elif code == TIMED_OUT:
        message = f"switch-to-configuration {goal.value} on {name} took longer than " \
                  f"{safety.activation_timeout} s and was stopped"
        hint = "raise deployment.activationTimeout if it is just slow"
    else:
        message = f"switch-to-configuration {goal.value} on {name} failed with exit status {code}"
        hint = "its last output lines (shown with this error) say what failed; the host may " \
               "be partly switched: check it, fix the configuration and deploy again"
    raise ActivationError(message, returncode=code, stderr_tail=tail, hint=hint, host=name)


async def _undo(session: SshSession, directory: str, goal: Goal, *, magic: bool, auto: bool,
                error: HealthCheckError) -> None:
    """A health check failed after activation: go back now (raises RolledBackError), or leave
    the host as it is when rollback is off (the caller re-raises the check's error)."""
    name = session.target.name
    reason = f"health check failed: {error}"
    if magic:
        # the watchdog is waiting for a confirmation: tell it not to wait
        await session.run(hostside.argv("abort", directory, reason), what="aborting",
                          elevated=True, error=ActivationError)
        outcome = await _outcome(session, directory, 60)
    elif auto:
        done = await session.run(
            hostside.argv("undo", directory, goal.value, _flag(goal.sets_profile), reason),
            what="rolling back", elevated=True, error=ActivationError)
        outcome = done.stdout.strip()
    else:
        return
    if outcome.startswith("rolled-back"):
        raise RolledBackError(f"{error}; {name} rolled back to its previous system", host=name,
                              hint=error.hint) from None
    raise ActivationError(f"{error}; rolling {name} back failed too ({outcome})", host=name,
                          hint="the host needs a look: nixlift list-generations") from None


async def _outcome(session: SshSession, directory: str, timeout: int) -> str:
    done = await session.run(hostside.argv("wait_outcome", directory, str(timeout)),
                             what="waiting for the host's decision", elevated=True,
                             error=ActivationError, timeout=timeout + 30)
    return done.stdout.strip()


async def _confirm(session: SshSession, directory: str, safety: Safety,
                   confirm: Callable[[str], Awaitable[str]]) -> None:
    name = session.target.name
    try:
        outcome = await confirm(directory)
    except NixliftError as e:
        # The host decides: it rolls back once the confirmation time is up.
        outcome = await _outcome(session, directory, safety.confirm_timeout + 30)
        if outcome.startswith(("rolled-back", "rollback-failed")):
            raise RolledBackError(
                f"{name} rolled itself back: {e}", host=name,
                stderr_tail=getattr(e, "stderr_tail", ""),
                hint=(e.hint + "; " if e.hint else "") + "the new configuration must keep the "
                "host reachable over SSH (and pass its health checks); it now runs its "
                "previous system") from None
        raise
    if outcome == "no-canary":  # the watchdog had decided already: ask what
        outcome = await _outcome(session, directory, 30)
    if outcome != "confirmed":
        raise RolledBackError(f"{name} rolled back before the confirmation arrived ({outcome})",
                              host=name, hint="raise deployment.confirmTimeout")


#: timeout(1)'s status: switch-to-configuration ran past deployment.activationTimeout
TIMED_OUT = 124


def _rolled_back(name: str, outcome: str, tail: str, goal: Goal, code: int) -> ActivationError:
    reason = f"switch-to-configuration {goal.value} exited with {code}"
    if code == TIMED_OUT:
        reason = f"switch-to-configuration {goal.value} took longer than activationTimeout"
    if outcome.startswith("rolled-back"):
        return RolledBackError(
            f"{reason} on {name}; rolled back to the previous system", returncode=code,
            stderr_tail=tail, host=name,
            hint="its last output lines say what failed; the host runs its previous system")
    return ActivationError(
        f"{reason} on {name}, and rolling back failed too ({outcome})", returncode=code,
        stderr_tail=tail, host=name, hint="the host needs a look: nixlift list-generations")
