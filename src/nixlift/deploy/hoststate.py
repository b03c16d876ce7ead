"""Read what a host runs now, from the host itself: one round trip, no state kept here."""

from __future__ import annotations

from dataclasses import dataclass

from nixlift.deploy import hostside
from nixlift.model import HostState
from nixlift.transport.ssh import SshSession


@dataclass(frozen=True)
class Probe:
    state: HostState
    #: whether the system we want to deploy is already in the host's store
    has_system: bool


def parse(stdout: str) -> Probe:
    values = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    return Probe(
        state=HostState(
            current_system=values.get("current") or None,
            profile_system=values.get("profile") or None,
            boot_id=values.get("boot_id") or None,
        ),
        has_system=values.get("valid") == "1",
    )


async def probe(session: SshSession, system: str | None) -> Probe:
    done = await session.run(hostside.argv("probe", system or ""),
                             what="reading the host's state")
    return parse(done.stdout)
