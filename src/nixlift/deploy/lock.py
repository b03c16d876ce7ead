"""A lock on each host while nixlift changes it, held by the agent on the host for as long as our
connection lasts: a deployer that dies or loses its connection frees it at once. It lives in
/run/nixlift, which only root may enter, so no other user can take it or read who holds it."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from nixlift.agent.protocol import Agent, Held, Probe
from nixlift.deploy.keys import Known
from nixlift.errors import NixliftError


class LockedError(NixliftError):
    """Another deployer holds the host's lock."""

    kind = "locked"


def holder_info(deployment: str) -> dict[str, Any]:
    """Who we are, for the message a second deployer gets."""
    return {
        "user": getpass.getuser(),
        "from": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "deployment": deployment,
    }


def describe_holder(info: object) -> str:
    if not isinstance(info, dict):
        return "another deployer"
    if "what" in info:
        return str(info["what"])
    return (
        f"{info.get('user', '?')}@{info.get('from', '?')} (pid {info.get('pid', '?')}, "
        f"deploying {info.get('deployment', '?')}) since {info.get('since', '?')}"
    )


@dataclass(frozen=True)
class Locked:
    """What the host said when it gave us its lock."""

    probe: Probe
    #: what it knows of the keys nixlift wrote there (when asked)
    keys: Known | None = None


class HostLock:
    def __init__(
        self,
        agent: Agent,
        info: dict[str, Any],
        wait: int,
        system: str = "",
        *,
        want_keys: bool = False,
        exclusive: bool = True,
    ) -> None:
        self.agent = agent
        self.info = info
        self.wait = wait
        self.system = system
        self.want_keys = want_keys
        #: False: the same session (the host's state, the record) without the lock, for a push
        self.exclusive = exclusive
        self._held: Held | None = None
        #: the call a push's record was sent ahead on (pend)
        self._pended: Held | None = None

    async def acquire(self) -> Locked:
        """Hold the lock; return the host's state as read under it (for `system`)."""
        self._held = await self.agent.hold_lock(
            self.info, self.wait, self.system, want_keys=self.want_keys, exclusive=self.exclusive
        )
        answer = self._held.first
        if answer.get("open"):
            self.agent.session = self._held
            keys = answer.get("keys")
            return Locked(
                Probe.from_json(answer.get("probe") or {}),
                Known.from_json(keys) if isinstance(keys, dict) else None,
            )
        await self.release()
        name = self.agent.host.name
        raise LockedError(
            f"{name} is locked by {describe_holder(answer.get('holder'))}",
            host=name,
            hint="wait for that deploy to end, or give --lock-wait SECONDS to wait for it",
        )

    async def retake(self) -> Probe | None:
        """Take the lock again if the call that held it has ended: its connection was cut (a
        copy retried over a new one), and the host freed the lock when it went. Returns the
        host's state as read under the new lock (another deployer may have changed it in
        between), or None when the lock was still held."""
        if self._held is None or not self._held.task.done():
            return None
        await self._held.end()  # (how it ended, the cut, is read before it is replaced)
        return (await self.acquire()).probe

    async def pend(self, system: str, entry: dict[str, Any]) -> None:
        """Send a push's record ahead, while its copy runs: the host writes it when this call
        ends if `system` is then in its store, so the push's end waits for no answer (see
        `finish`). Without a usable call nothing is sent, and `finish` records as usual."""
        held = self._held
        if held is None:
            return
        line = f"pending {system} " + json.dumps(entry, sort_keys=True)
        try:
            await held.send(line)
        except NixliftError:
            return  # (the call has ended: the push goes on)
        self._pended = held

    async def finish(self, entry: dict[str, Any] | None, *, as_sent_ahead: bool = False) -> None:
        """Append `entry` (if any) to the host's history through the lock's own connection and
        let the lock go, in one round trip. `as_sent_ahead`: `entry` says what a record sent
        ahead (pend) says; if one went on this very call, it stands, and the call is let go
        without waiting for the host."""
        held = self._held
        if as_sent_ahead and held is not None and held is self._pended and held.usable:
            held.let_go()
            return
        if self._held is None or self._held.task.done():
            if entry is not None:
                await self.agent.record(entry)
            return
        line = None if entry is None else "record " + json.dumps(entry, sort_keys=True)
        answer = await self._held.last(line)
        if answer is not None and not answer.get("recorded"):
            raise NixliftError(
                f"{self.agent.host.name} did not take the record", host=self.agent.host.name
            )

    async def release(self) -> None:
        if self._held is not None:
            await self._held.end()  # (the agent's calls then go on sessions of their own)
