"""What the user means: network files, a flake or a registered name (or, with none of them, the
nearest configuration), arguments, nix settings, selection; and saying what was read."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift.cli.options import NetworkChoice
from nixlift.errors import UsageError
from nixlift.nix.argv import NetworkArgs, NixSettings
from nixlift.nix.evaluate import Announce, NetworkSource, evaluate
from nixlift.nix.flake import FlakeRef, looks_like_flake
from nixlift.selection import Selection

if TYPE_CHECKING:
    from nixlift import registry as reg
    from nixlift.model import Network
    from nixlift.nix.discover import Found


@dataclass(frozen=True)
class Request:
    """What to evaluate: the network's source, nix's settings and the selection."""

    source: NetworkSource
    settings: NixSettings
    selection: Selection


def _abs_include(entry: str) -> str:
    """-I name=path / -I path with a relative path made absolute (registry entries outlive cwd)."""
    name, sep, path = entry.rpartition("=")
    if "://" in path or path.startswith(("<", "channel:", "flake:")) or not path:
        return entry
    resolved = Path(path).resolve()
    if not resolved.exists():
        # nix would skip it without a word and fail later on `<nixpkgs>` inside nixlift's code
        raise UsageError(
            f"-I {entry}: {resolved} does not exist",
            hint="give the directory of a nixpkgs checkout (or a channel: / https:// URL)",
        )
    return f"{name}{sep}{resolved}"


def _flake_of(choice: NetworkChoice) -> FlakeRef | None:
    """--flake, or a NETWORK argument that is a flake (then the only one)."""
    flakes = [f for f in choice.files if looks_like_flake(f)]
    if choice.flake is not None:
        if choice.files:
            raise UsageError(
                f"--flake {choice.flake} and network files ({' '.join(choice.files)}) given",
                hint="a network is read from files or from one flake",
            )
        return FlakeRef.parse(choice.flake)
    if not flakes:
        return None
    if len(choice.files) > 1:
        raise UsageError(
            f"{flakes[0]} is a flake, and a flake is read alone (given: {' '.join(choice.files)})",
            hint="name one flake (REF#ATTR), or network files to merge",
        )
    return FlakeRef.parse(flakes[0])


def _name_of_flake(ref: FlakeRef) -> str:
    local = ref.local_dir()
    if local is not None:
        return local.resolve().name
    return ref.ref.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or "flake"


@dataclass(frozen=True)
class _Named:
    """What the command line (or the registry) names: a flake or files, under a name."""

    name: str
    flake: FlakeRef | None = None
    paths: tuple[Path, ...] = ()
    entry: reg.Entry | None = None


def _named(choice: NetworkChoice) -> _Named | None:
    """The network the command line names; None when it names none (then it is looked for)."""
    flake = _flake_of(choice)
    if flake is not None:
        return _Named(choice.deployment or _name_of_flake(flake), flake)
    if choice.files:
        name = choice.deployment or Path(choice.files[0]).resolve().name.removesuffix(".nix")
        return _Named(name, paths=tuple(Path(f) for f in choice.files))
    registered = choice.deployment or os.environ.get("NIXLIFT_DEPLOYMENT")
    if registered:
        from nixlift import registry as reg  # (only for a registered name)

        return _from_entry(reg.Registry().get(registered))
    return None


def _from_entry(entry: reg.Entry) -> _Named:
    flake = None if entry.flake is None else FlakeRef.parse(entry.flake)
    return _Named(entry.name, flake, tuple(Path(f) for f in entry.files), entry)


def _from_found(found: Found) -> _Named:
    print(f"nixlift: using {found.path} (nearest to {Path.cwd()})", file=sys.stderr)
    if found.flake is not None:
        return _Named(_name_of_flake(found.flake), found.flake)
    return _Named(found.path.resolve().name.removesuffix(".nix"), paths=(found.path,))


async def resolve(choice: NetworkChoice) -> Request:
    named = _named(choice)
    if named is None:
        # (imported here: a network named on the command line is not looked for)
        from nixlift.nix.discover import discover

        found = await discover(Path.cwd(), _settings(choice))
        named = _from_found(found) if found is not None else _from_entry(_only_entry())
    return _request(choice, named)


def resolve_named(choice: NetworkChoice) -> Request | None:
    """resolve() for a network the command line (or the environment) names; None where it
    names none and one would be looked for (which asks nix)."""
    named = _named(choice)
    return None if named is None else _request(choice, named)


def _settings(choice: NetworkChoice) -> NixSettings:
    return NixSettings(
        options=choice.nix_options,
        builders=choice.builders,
        max_jobs=choice.max_jobs,
        show_trace=choice.show_trace,
    )


def _request(choice: NetworkChoice, named: _Named) -> Request:
    settings = _settings(choice)
    entry = named.entry
    include = list(entry.include) if entry else []
    if choice.nixpkgs:
        nixpkgs = Path(choice.nixpkgs).resolve()
        if not nixpkgs.exists():
            raise UsageError(
                f"--nixpkgs {choice.nixpkgs}: {nixpkgs} does not exist",
                hint="give the directory of a nixpkgs checkout",
            )
        include.insert(0, f"nixpkgs={nixpkgs}")
    include += choice.search_path
    exprs = [*(entry.args if entry else ()), *choice.args]
    strings = [*(entry.argstrs if entry else ()), *choice.argstrs]
    settings = replace(settings, include=tuple(_abs_include(i) for i in include))
    source = NetworkSource(
        named.paths,
        named.name,
        NetworkArgs(tuple(exprs), tuple(strings)),
        flake=named.flake,
        ssh_options=tuple(os.environ.get("NIX_SSHOPTS", "").split()),
    )
    selection = Selection.from_args(
        choice.on,
        choice.exclude,
        tagged=choice.tagged,
        skip=choice.skip,
        every=choice.every,
        limit=choice.limit,
    )
    return Request(source, settings, selection)


def _only_entry() -> reg.Entry:
    from nixlift import registry as reg

    entries = reg.Registry().entries()
    if len(entries) == 1:
        return entries[0]
    raise UsageError(
        "no network given, and none found here or above "
        "(flake.nix, hive.nix, nixops.nix, network.nix)",
        hint="give the network file (nixlift deploy ./network.nix), a flake (--flake .#NAME) "
        f"or -d NAME (registered: {', '.join(e.name for e in entries) or 'none'})",
    )


async def evaluate_request(
    req: Request,
    *,
    machines: str = "full",
    key_texts: bool = False,
    announce: Announce | None = None,
    started: Callable[[], None] | None = None,
) -> Network:
    """Evaluate, and say on stderr what nix said while it evaluated (the configuration's
    traces and warnings), which flake output was read and what the network declares that
    nixlift does not act on."""
    network = await evaluate(
        req.source,
        req.selection,
        req.settings,
        machines=machines,
        key_texts=key_texts,
        announce=announce,
        started=started,
    )
    for line in network.messages:
        print(f"nixlift: evaluation: {line}", file=sys.stderr)
    if network.output is not None:
        print(f"nixlift: reading {network.source}", file=sys.stderr)
    for notice in network.notices:
        print(f"nixlift: note: {notice}", file=sys.stderr)
    return network


def with_network_config(settings: NixSettings, network: Network) -> NixSettings:
    """network.nixConfig (morph) applies to builds, below the user's own --option; colmena's
    meta.machinesFile gives the builders unless --builders does."""
    if network.machines_file is not None and settings.builders is None:
        settings = replace(settings, builders=f"@{network.machines_file}")
    if not network.nix_config:
        return settings
    given = {k for k, _ in settings.options}
    extra = tuple((k, v) for k, v in network.nix_config if k not in given)
    return replace(settings, options=extra + settings.options)
