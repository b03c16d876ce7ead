"""Finding the network when none is named: from a directory upward, in each directory the first of
a flake.nix that has an output nixlift reads, hive.nix (colmena), nixops.nix (NixOps) and
network.nix (NixOps, morph)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nixlift.nix.argv import NixSettings
from nixlift.nix.evaluate import flake_outputs
from nixlift.nix.flake import FlakeRef

CANDIDATES = ("flake.nix", "hive.nix", "nixops.nix", "network.nix")


@dataclass(frozen=True)
class Found:
    """The network file found where none was named."""

    #: the file found
    path: Path
    #: the flake it belongs to, when it is a flake.nix
    flake: FlakeRef | None = None


def candidates(start: Path) -> list[Path]:
    """The files that could be the configuration, nearest first."""
    start = start.resolve()
    return [
        directory / name
        for directory in (start, *start.parents)
        for name in CANDIDATES
        if (directory / name).is_file()
    ]


async def discover(start: Path, settings: NixSettings) -> Found | None:
    """The configuration nearest to `start`; None when there is none up to /."""
    for path in candidates(start):
        if path.name != "flake.nix":
            return Found(path)
        ref = FlakeRef(str(path.parent))
        # a flake with none of the outputs (a package's own flake) is passed over
        if await flake_outputs(ref, settings):
            return Found(path, ref)
    return None
