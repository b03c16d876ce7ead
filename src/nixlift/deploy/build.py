"""Build machines' systems: here (or on nix's remote builders), or on the host itself."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from nixlift import proc
from nixlift.deploy.copy import copy
from nixlift.errors import BuildError
from nixlift.events import Emit, Output
from nixlift.model import Machine
from nixlift.nix import argv as nix_argv
from nixlift.nix.argv import NixSettings
from nixlift.nix.logparse import run_logged
from nixlift.transport.ssh import SshSession

_BUILD_HINT = "the build log above shows which derivation failed and why"


async def build(machine: Machine, settings: NixSettings, gc_roots: Path, emit: Emit) -> str:
    """Realise the machine's toplevel, keeping it alive with a GC root under `gc_roots`."""
    root = gc_roots / machine.name
    await run_logged(nix_argv.realise(machine.drv_path, root, settings), host=machine.name,
                     phase="build", emit=emit, error=BuildError,
                     what=f"building {machine.name}", hint=_BUILD_HINT)
    built = await asyncio.to_thread(os.path.realpath, root)
    if built != machine.out_path:
        raise BuildError(
            f"building {machine.name} produced {built}, not {machine.out_path}",
            host=machine.name,
            hint="report this as a bug in nixlift",
        )
    return built


async def register_built(machines: Sequence[Machine], settings: NixSettings,
                         gc_roots: Path) -> None:
    """Protect systems that are already in the store with GC roots: one nix call for all of
    them, instead of one per machine (what keeps a no-op redeploy of many hosts cheap)."""
    drvs = list(dict.fromkeys(m.drv_path for m in machines))
    if not drvs:
        return
    await proc.run(
        ["nix-store", "--realise", *drvs, "--add-root", str(gc_roots / ".built"),
         *settings.build_args()],
        what="registering built systems",
        error=BuildError,
        hint=_BUILD_HINT,
    )


async def build_on_target(session: SshSession, machine: Machine, emit: Emit) -> str:
    """deployment.buildOnTarget: send the derivations, let the host build its own system."""
    await copy(session.target, machine.drv_path, use_substitutes=False, emit=emit)
    await session.run(
        ["nix-store", "--realise", machine.drv_path],
        what=f"building {machine.name} on the host",
        elevated=True,
        error=BuildError,
        on_stderr=lambda line: emit(Output(machine.name, line)),
        stop_with_connection=True,
    )
    return machine.out_path
