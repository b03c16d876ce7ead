"""Read what a host runs now, from the host itself: one round trip, no state kept here."""

from __future__ import annotations

from dataclasses import dataclass

from nixlift.model import HostState
from nixlift.transport.ssh import SshSession

SYSTEM_PROFILE = "/nix/var/nix/profiles/system"

# Constant text; the store path to check arrives as "$1", never spliced in.
_QUERY = """
printf 'current=%s\\n' "$(readlink /run/current-system 2>/dev/null)"
printf 'profile=%s\\n' "$(readlink -f /nix/var/nix/profiles/system 2>/dev/null)"
printf 'boot_id=%s\\n' "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
if [ -n "$1" ] && nix-store --check-validity "$1" 2>/dev/null
then echo valid=1
else echo valid=0
fi
"""


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
    done = await session.run(
        ["sh", "-c", _QUERY, "nixlift-probe", system or ""], what="reading the host's state"
    )
    return parse(done.stdout)
