"""The agent's answers that only some commands ask for (a plan's survey and closure,
generations, a profile's or a switch's outcome): a module apart from protocol.py, which every
deploy imports, so that a deploy that asks none of them does not create their classes (each
frozen dataclass is ~2 ms of a start here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nixlift.agent.protocol import Probe


@dataclass(frozen=True)
class Survey:
    """What a host says when asked without being locked or changed (`nixlift plan`)."""

    probe: Probe
    #: what it knows of the keys nixlift wrote there, as the agent's keys_known answers (a
    #: null salt: it was never given a key); None when not asked
    keys: Mapping[str, Any] | None = None
    #: who holds its lock now (a deploy under way), as the lock's holder wrote it
    holder: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class HostClosure:
    """The host's running closure and what it lacks of a new one."""

    current: str | None
    #: every path of the running system's closure, with its NAR size
    closure: Mapping[str, int]
    #: the paths of the new closure the host's store does not have
    missing: tuple[str, ...]
    #: what nix on the host said of fetching those (`nix-store --realise --dry-run`), as printed
    dry_run: str = ""


def parse_sizes(text: str) -> dict[str, int]:
    """`SIZE PATH` lines into path → size."""
    found = {}
    for line in text.splitlines():
        size, _, path = line.strip().partition(" ")
        if path and size.isdigit():
            found[path] = int(size)
    return found


@dataclass(frozen=True)
class Generation:
    """One generation of the host's system profile."""

    number: int
    link: str
    created: int  # unix time of the profile link
    system: str
    current: bool  # the profile points at it (the boot default)
    running: bool  # /run/current-system is its system


_LINK = re.compile(r"^system-(\d+)-link$")


def parse_generations(data: Mapping[str, Any]) -> list[Generation]:
    current = data.get("profile") or ""
    running = data.get("running") or ""
    found = []
    for g in data.get("generations") or []:
        m = _LINK.match(str(g.get("link") or ""))
        if m and g.get("system"):
            found.append(
                Generation(
                    int(m.group(1)),
                    g["link"],
                    int(g.get("created") or 0),
                    g["system"],
                    g["link"] == current,
                    g["system"] == running,
                )
            )
    return sorted(found, key=lambda g: g.number)


@dataclass(frozen=True)
class ProfileOutcome:
    """How a deploy-rs profile's installation and activation ended on the host."""

    #: "activated", "failed", "rolled-back" (to its previous generation), "rollback-failed"
    outcome: str
    #: deploy-rs-activate's exit status (124: it ran past the time limit; 91: setting the
    #: profile failed)
    status: int
    #: the profile's path on the host
    profile: str
    log: str

    @property
    def ok(self) -> bool:
        return self.outcome == "activated"


@dataclass(frozen=True)
class Switched:
    """How switching the host to another system ended."""

    ok: bool
    running: str | None
    log: str
