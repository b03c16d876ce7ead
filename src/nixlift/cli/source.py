"""What the user means: network files or a registered name, arguments, nix settings, selection."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from nixlift import registry as reg
from nixlift.cli.parser import GOALS
from nixlift.errors import UsageError
from nixlift.model import Goal, Network
from nixlift.nix.argv import NetworkArgs, NixSettings
from nixlift.nix.evaluate import NetworkSource
from nixlift.selection import Selection


@dataclass(frozen=True)
class Request:
    source: NetworkSource
    settings: NixSettings
    selection: Selection


def _abs_include(entry: str) -> str:
    """-I name=path / -I path with a relative path made absolute (registry entries outlive cwd)."""
    name, sep, path = entry.rpartition("=")
    if "://" in path or path.startswith("<") or not path:
        return entry
    return f"{name}{sep}{Path(path).resolve()}"


def split_goal(args: argparse.Namespace) -> Goal | None:
    """`nixlift deploy ./net.nix boot`: a trailing goal word that is not a file is the goal."""
    files: list[str] = args.network
    if files and files[-1] in GOALS and not Path(files[-1]).exists():
        return Goal(files.pop())
    return None


def resolve(args: argparse.Namespace) -> Request:
    files: list[str] = list(args.network)
    include: list[str] = []
    exprs: list[tuple[str, str]] = []
    strings: list[tuple[str, str]] = []
    if files:
        name = args.deployment or Path(files[0]).resolve().name.removesuffix(".nix")
        paths = tuple(Path(f) for f in files)
    else:
        name = args.deployment or os.environ.get("NIXLIFT_DEPLOYMENT") or _only_entry()
        entry = reg.Registry().get(name)
        paths = tuple(Path(f) for f in entry.files)
        include += entry.include
        exprs += entry.args
        strings += entry.argstrs
    if args.nixpkgs:
        include.insert(0, f"nixpkgs={Path(args.nixpkgs).resolve()}")
    include += args.search_path
    exprs += [tuple(a) for a in args.arg]
    strings += [tuple(a) for a in args.argstr]
    settings = NixSettings(
        include=tuple(_abs_include(i) for i in include),
        options=tuple((k, v) for k, v in getattr(args, "option", [])),
        builders=getattr(args, "builders", None),
        max_jobs=getattr(args, "max_jobs", None),
        show_trace=args.show_trace,
    )
    source = NetworkSource(paths, name, NetworkArgs(tuple(exprs), tuple(strings)))
    selection = Selection.from_args(
        [*getattr(args, "on", []), *getattr(args, "include_machines", [])],
        getattr(args, "exclude", []),
    )
    return Request(source, settings, selection)


def _only_entry() -> str:
    entries = reg.Registry().entries()
    if len(entries) == 1:
        return entries[0].name
    raise UsageError(
        "no network file and no deployment name given",
        hint="give the network file (nixlift deploy ./network.nix) or -d NAME "
             f"(registered: {', '.join(e.name for e in entries) or 'none'})",
    )


def with_network_config(settings: NixSettings, network: Network) -> NixSettings:
    """network.nixConfig (morph) applies to builds, below the user's own --option."""
    if not network.nix_config:
        return settings
    given = {k for k, _ in settings.options}
    extra = tuple((k, v) for k, v in network.nix_config if k not in given)
    return NixSettings(settings.include, extra + settings.options, settings.builders,
                       settings.max_jobs, settings.show_trace)
