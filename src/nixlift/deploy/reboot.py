"""Reboot a host and wait for it to come back running the expected system (morph, colmena)."""

from __future__ import annotations

import asyncio
import time

from nixlift.agent.protocol import Agent
from nixlift.errors import NixliftError, SshError
from nixlift.events import Emit, Phase
from nixlift.model import Stage

#: seconds before the first attempt to reach the host again (it goes down a second after asked)
SETTLE = 1.5
#: seconds between attempts
RETRY = 1.0


class RebootError(NixliftError):
    """The host did not come back, or came back running something else."""

    kind = "reboot"


async def reboot(agent: Agent, emit: Emit, *, timeout: int, expect: str | None) -> None:
    """Reboot; return once the host is back with a new boot id (its Host connected anew). With
    `expect`, the host must run that system (its /run/current-system) after the boot."""
    host = agent.host
    if host.is_local:
        raise RebootError(
            f"{host.name} is this machine: nixlift cannot wait for itself to reboot",
            host=host.name,
            hint="reboot it yourself",
        )
    # The reboot ends the held lock's session with the connection: these calls go on their own
    # (a call still being made through a session that is going could not be told from a failure).
    agent.session = None
    before = (await agent.probe(None)).state.boot_id
    emit(Phase(host.name, Stage.REBOOT, "rebooting"))
    await agent.reboot()
    await host.close()
    deadline = time.monotonic() + timeout
    await asyncio.sleep(SETTLE)
    last_error: NixliftError | None = None
    emit(Phase(host.name, Stage.REBOOT, "waiting for the host to come back"))
    while time.monotonic() < deadline:
        try:
            await host.reopen(connect_timeout=5)
            probe = await agent.probe(None)
        except SshError as e:
            last_error = e
            await asyncio.sleep(RETRY)
            continue
        if probe.state.boot_id and probe.state.boot_id != before:
            if expect is not None and probe.state.current_system != expect:
                raise RebootError(
                    f"{host.name} came back running {probe.state.current_system or 'nothing'}"
                    f", not {expect}",
                    host=host.name,
                    hint="its boot entry is not the new system: check the bootloader",
                )
            return
        await asyncio.sleep(RETRY)  # not gone yet, or no boot id to tell: try again
    raise RebootError(
        f"{host.name} did not come back within {timeout} s after rebooting"
        + (f" (last: {last_error})" if last_error else ""),
        host=host.name,
        hint="check the host's console; raise --reboot-timeout if it boots slowly",
    )
