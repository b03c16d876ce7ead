"""What the user means: network files or a registered name, arguments, nix settings, selection."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from nixlift import registry as reg
from nixlift.cli.options import NetworkChoice
from nixlift.errors import UsageError
from nixlift.model import Network
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


def resolve(choice: NetworkChoice) -> Request:
    files = list(choice.files)
    include: list[str] = []
    exprs: list[tuple[str, str]] = []
    strings: list[tuple[str, str]] = []
    if files:
        name = choice.deployment or Path(files[0]).resolve().name.removesuffix(".nix")
        paths = tuple(Path(f) for f in files)
    else:
        name = choice.deployment or os.environ.get("NIXLIFT_DEPLOYMENT") or _only_entry()
        entry = reg.Registry().get(name)
        paths = tuple(Path(f) for f in entry.files)
        include += entry.include
        exprs += entry.args
        strings += entry.argstrs
    if choice.nixpkgs:
        include.insert(0, f"nixpkgs={Path(choice.nixpkgs).resolve()}")
    include += choice.search_path
    exprs += choice.args
    strings += choice.argstrs
    settings = NixSettings(
        include=tuple(_abs_include(i) for i in include),
        options=choice.nix_options,
        builders=choice.builders,
        max_jobs=choice.max_jobs,
        show_trace=choice.show_trace,
    )
    source = NetworkSource(paths, name, NetworkArgs(tuple(exprs), tuple(strings)))
    return Request(source, settings, Selection.from_args(choice.on, choice.exclude))


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
    return replace(settings, options=extra + settings.options)
