"""The system profile's generations, read from and acted on the host itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nixlift.deploy import hostside
from nixlift.errors import ActivationError, UsageError
from nixlift.transport.ssh import SshSession

_LINK = re.compile(r"^system-(\d+)-link$")


@dataclass(frozen=True)
class Generation:
    number: int
    link: str
    created: int  # unix time of the profile link
    system: str
    current: bool  # the profile points at it (the boot default)
    running: bool  # /run/current-system is its system


def parse(stdout: str) -> list[Generation]:
    current = running = ""
    rows: list[tuple[int, str, int, str]] = []
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "current":
            current = rest.strip()
        elif kind == "running":
            running = rest.strip()
        elif kind == "generation":
            link, created, system = rest.split(" ", 2)
            m = _LINK.match(link)
            if m:
                rows.append((int(m.group(1)), link, int(created), system))
    return [Generation(n, link, created, system, link == current, system == running)
            for n, link, created, system in sorted(rows)]


async def list_generations(session: SshSession) -> list[Generation]:
    done = await session.run(hostside.argv("generations"), what="listing generations")
    return parse(done.stdout)


def choose(generations: list[Generation], to: int | None, host: str) -> Generation:
    """The generation `rollback` goes to: --to N, else the one before the current one."""
    if to is not None:
        for g in generations:
            if g.number == to:
                return g
        have = ", ".join(str(g.number) for g in generations) or "none"
        raise UsageError(f"{host} has no generation {to} (it has: {have})",
                         hint="nixlift list-generations shows them")
    current = next((g for g in generations if g.current), None)
    older = [g for g in generations if current is None or g.number < current.number]
    if not older:
        raise UsageError(f"{host} has no generation before its current one to roll back to",
                         hint="nixlift list-generations shows them")
    return older[-1]


async def switch_to(session: SshSession, generation: Generation) -> None:
    await session.run(hostside.argv("switch_generation", generation.link),
                      what=f"switching to generation {generation.number}", elevated=True,
                      error=ActivationError)
