"""deploy-rs profiles besides the system (home-manager, custom ones): built here with the
system, copied to the host, then each installed as its user's profile and activated with its
own deploy-rs-activate, in the node's profilesOrder, once the system reached its goal."""

from __future__ import annotations

from pathlib import Path

from nixlift.agent.protocol import Agent
from nixlift.deploy.build import BUILD_HINT
from nixlift.deploy.copy import copy
from nixlift.errors import ActivationError, BuildError
from nixlift.events import Emit, Output
from nixlift.model import Goal, Machine, Stage
from nixlift.nix import argv as nix_argv
from nixlift.nix.argv import NixSettings
from nixlift.nix.logparse import run_logged


async def build(machine: Machine, settings: NixSettings, gc_roots: Path, emit: Emit) -> None:
    """All of the machine's profiles in one nix-store (a GC root each, under `gc_roots`)."""
    await run_logged(
        nix_argv.realise_many(
            [p.drv_path for p in machine.profiles], gc_roots / f"{machine.name}-profiles", settings
        ),
        host=machine.name,
        phase=Stage.BUILD,
        emit=emit,
        error=BuildError,
        what=f"building the profiles of {machine.name}",
        hint=BUILD_HINT,
    )


async def deploy(
    agent: Agent, machine: Machine, goal: Goal, emit: Emit, *, daemon: bool = True
) -> None:
    """Copy the profiles; with a goal that activates, install and activate each in turn. The
    first that fails (after going back to its previous generation) ends the host's deploy."""
    await copy(
        agent,
        [p.path for p in machine.profiles],
        use_substitutes=machine.deployment.use_substitutes,
        emit=emit,
        daemon=daemon,
    )
    if not goal.activates:
        return
    for p in machine.profiles:
        done = await agent.profile(
            name=p.name,
            path=p.path,
            user=p.user,
            profile_path=p.profile_path,
            goal=goal.value,
            auto_rollback=p.auto_rollback,
            activation_timeout=p.activation_timeout,
        )
        for line in done.log.splitlines():
            emit(Output(machine.name, f"{p.name}: {line}"))
        if done.ok:
            continue
        how = {
            "rolled-back": "it was rolled back to its previous generation",
            "rollback-failed": "rolling it back failed too",
        }.get(done.outcome, "it was left as it is")
        why = (
            "setting the profile failed"
            if done.status == 91
            else f"took longer than {p.activation_timeout} s"
            if done.status == 124
            else f"deploy-rs-activate exited with {done.status}"
        )
        raise ActivationError(
            f"the profile {p.name} ({p.user}, {done.profile}) on {machine.name}: {why}; {how} "
            "(the system stays activated)",
            host=machine.name,
            stderr_tail="\n".join(done.log.splitlines()[-25:]),
            hint="its output (the log tail) says what failed",
        )
