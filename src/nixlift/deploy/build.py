"""Build a machine's system on this machine (or its remote builders)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from nixlift import proc
from nixlift.deploy.copy import copy
from nixlift.errors import BuildError
from nixlift.events import Emit, Output
from nixlift.model import Machine
from nixlift.nix import argv as nix_argv
from nixlift.nix.argv import NixSettings
from nixlift.transport.ssh import SshSession


async def build(machine: Machine, settings: NixSettings, gc_roots: Path, emit: Emit) -> str:
    """Realise the machine's toplevel, keeping it alive with a GC root under `gc_roots`."""
    root = gc_roots / machine.name
    await proc.run(
        nix_argv.realise(machine.drv_path, root, settings),
        what=f"building {machine.name}",
        error=BuildError,
        host=machine.name,
        hint="the build log above shows which derivation failed and why",
        on_stderr=lambda line: emit(Output(machine.name, line)),
    )
    built = await asyncio.to_thread(os.path.realpath, root)
    if built != machine.out_path:
        raise BuildError(
            f"building {machine.name} produced {built}, not {machine.out_path}",
            host=machine.name,
            hint="report this as a bug in nixlift",
        )
    return built


async def build_on_target(session: SshSession, machine: Machine, emit: Emit) -> str:
    """deployment.buildOnTarget: send the derivations, let the host build its own system."""
    await copy(session.target, machine.drv_path, use_substitutes=False, emit=emit)
    await session.run(
        ["nix-store", "--realise", machine.drv_path],
        what=f"building {machine.name} on the host",
        elevated=True,
        error=BuildError,
        on_stderr=lambda line: emit(Output(machine.name, line)),
    )
    return machine.out_path
