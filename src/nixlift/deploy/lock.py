"""A lock on each host while nixlift changes it, held by a process on the host that lives as
long as our connection does: a deployer that dies or loses its connection frees it at once."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import socket
import time

from nixlift import proc
from nixlift.deploy import hostside, hoststate
from nixlift.errors import CommandError, NixliftError
from nixlift.transport.ssh import SshSession


class LockedError(NixliftError):
    """Another deployer holds the host's lock."""


def holder_info(deployment: str) -> str:
    """Who we are, for the message a second deployer gets."""
    return json.dumps({
        "user": getpass.getuser(),
        "from": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "deployment": deployment,
    }, sort_keys=True)


def describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return "another deployer"
    if "what" in info:
        return str(info["what"])
    return (f"{info.get('user', '?')}@{info.get('from', '?')} (pid {info.get('pid', '?')}, "
            f"deploying {info.get('deployment', '?')}) since {info.get('since', '?')}")


class HostLock:
    def __init__(self, session: SshSession, info: str, wait: int, system: str = "") -> None:
        self.session = session
        self.info = info
        self.wait = wait
        self.system = system
        self._task: asyncio.Task[proc.Completed] | None = None

    async def acquire(self) -> hoststate.Probe:
        """Hold the lock; return the host's state as read under it (for `system`)."""
        got = asyncio.get_running_loop().create_future()
        lines: list[str] = []

        def line(text: str) -> None:
            lines.append(text)
            if text == "end" and "locked" in lines and not got.done():
                got.set_result(hoststate.parse("\n".join(lines[lines.index("locked") + 1:])))

        self._task = asyncio.ensure_future(self.session.run(
            hostside.argv("lock", self.info, str(self.wait), self.system),
            what="locking the host", elevated=True, check=False, keep_stdin_open=True,
            on_stdout=line))
        await asyncio.wait({got, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if got.done():
            probe: hoststate.Probe = got.result()
            return probe
        done = self._task.result()
        name = self.session.target.name
        if lines[:1] == ["busy"]:
            holder = describe_holder(lines[1] if len(lines) > 1 else "")
            raise LockedError(
                f"{name} is locked by {holder}", host=name,
                hint="wait for that deploy to end, or give --lock-wait SECONDS to wait for it")
        raise CommandError(f"locking {name} failed", stderr_tail=done.stderr_tail(), host=name,
                           hint="the host needs flock (util-linux) on its PATH")

    async def release(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
