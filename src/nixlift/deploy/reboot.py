"""Reboot a host and wait for it to come back running the expected system (morph, colmena)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from nixlift.deploy import hoststate
from nixlift.errors import NixliftError, SshError
from nixlift.events import Emit, Phase
from nixlift.transport.ssh import SshSession

# Detached and delayed, so the command returns (and its session closes) before the host goes.
_REBOOT = "nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 </dev/null &"


class RebootError(NixliftError):
    """The host did not come back, or came back running something else."""


async def reboot(session: SshSession, control_path: Path, emit: Emit, *, timeout: int,
                 expect: str | None) -> SshSession:
    """Reboot; return a new session on the host once its boot id changed. With `expect`, the
    host must run that system (its /run/current-system) after the boot."""
    target = session.target
    before = (await hoststate.probe(session, None)).state.boot_id
    emit(Phase(target.name, "reboot", "rebooting"))
    await session.run([*target.elevate, "sh", "-c", _REBOOT], what="rebooting")
    await session.close()
    deadline = time.monotonic() + timeout
    await asyncio.sleep(1.5)
    last_error: NixliftError | None = None
    emit(Phase(target.name, "reboot", "waiting for the host to come back"))
    while time.monotonic() < deadline:
        fresh = SshSession(replace(target, connect_timeout=5), control_path)
        try:
            await fresh.__aenter__()
            probe = await hoststate.probe(fresh, None)
        except SshError as e:
            last_error = e
            await fresh.close()
            await asyncio.sleep(1)
            continue
        if probe.state.boot_id and probe.state.boot_id != before:
            if expect is not None and probe.state.current_system != expect:
                await fresh.close()
                raise RebootError(
                    f"{target.name} came back running {probe.state.current_system or 'nothing'}"
                    f", not {expect}", host=target.name,
                    hint="its boot entry is not the new system: check the bootloader")
            return fresh
        await fresh.close()  # not gone yet, or no boot id to tell: try again
        await asyncio.sleep(1)
    raise RebootError(
        f"{target.name} did not come back within {timeout} s after rebooting"
        + (f" (last: {last_error})" if last_error else ""), host=target.name,
        hint="check the host's console; raise --reboot-timeout if it boots slowly")
