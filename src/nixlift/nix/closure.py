"""Closures and what changes between two of them, as `nix store diff-closures` says it (Nix
2.8's src/nix/diff-closures.cc and src/libstore/names.cc, redone here because the old closure
is on a host and the new one here: no store holds both); and what nix would build or fetch
(its dry run, for `plan --no-build`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixlift import proc
from nixlift.errors import BuildError, CommandError
from nixlift.nix import argv
from nixlift.nix.argv import NixSettings

if TYPE_CHECKING:
    from nixlift.plans import PackageChange

#: a closure: every store path in it, with its NAR size in bytes
Closure = Mapping[str, int]

#: diff-closures strips what looks like an output name ("-man", "-lib32") before splitting the
#: version off; nix says itself that this is ambiguous ("-unstable" goes too), and it is kept so
#: that the names here are nix's
_OUTPUT = re.compile(r"(.*)-([a-z]+|lib32|lib64)")
#: nix shows a size change from this many bytes on
SIZE_SHOWN = 8 * 1024


def store_name(path: str) -> str:
    """`/nix/store/<hash>-hello-2.12.1` → `hello-2.12.1`."""
    base = path.rsplit("/", 1)[-1]
    return base.split("-", 1)[1] if "-" in base else base


def split_name(name: str) -> tuple[str, str]:
    """nix's DrvName: the name is everything before the first dash that is not followed by a
    letter, the version the rest (`apache-httpd-2.0.48` → `apache-httpd`, `2.0.48`)."""
    for i, c in enumerate(name[:-1]):
        after = name[i + 1]
        if c == "-" and not (after.isascii() and after.isalpha()):
            return name[:i], name[i + 1 :]
    return name, ""


def package_of(path: str) -> tuple[str, str]:
    """The package name and version diff-closures files a store path under."""
    name = store_name(path)
    m = _OUTPUT.fullmatch(name)
    if m:
        name = m.group(1)
    return split_name(name)


def _grouped(closure: Closure) -> dict[str, dict[str, int]]:
    """name → version → the NAR bytes of that name's paths of that version."""
    found: dict[str, dict[str, int]] = {}
    for path, size in closure.items():
        name, version = package_of(path)
        versions = found.setdefault(name, {})
        versions[version] = versions.get(version, 0) + size
    return found


def _bytewise(items: Iterable[str]) -> tuple[str, ...]:
    """Sorted as std::set<std::string> sorts (by bytes)."""
    return tuple(sorted(items, key=lambda s: s.encode()))


def diff(before: Closure, after: Closure) -> tuple[PackageChange, ...]:
    """The package changes from `before` to `after`, one per name, in nix's order."""
    from nixlift.plans import ChangeKind, PackageChange  # (a plan's: not every deploy's)

    old, new = _grouped(before), _grouped(after)
    changes = []
    for name in _bytewise(old.keys() | new.keys()):
        was, now = old.get(name, {}), new.get(name, {})
        removed = _bytewise(v for v in was if v not in now)
        added = _bytewise(v for v in now if v not in was)
        delta = sum(now.values()) - sum(was.values())
        if not removed and not added and abs(delta) < SIZE_SHOWN:
            continue
        if not was:
            kind = ChangeKind.ADDED
        elif not now:
            kind = ChangeKind.REMOVED
        elif removed or added:
            kind = ChangeKind.CHANGED
        else:
            kind = ChangeKind.SIZE
        changes.append(PackageChange(name, kind, removed, added, delta))
    return tuple(changes)


def _versions(versions: Sequence[str]) -> str:
    if not versions:
        return "∅"
    return ", ".join(_bytewise("ε" if v == "" else v for v in versions))


def nix_line(change: PackageChange) -> str:
    """The change as `nix store diff-closures` prints it (without its colours)."""
    items = []
    if change.removed or change.added:
        items.append(f"{_versions(change.removed)} → {_versions(change.added)}")
    if abs(change.size_delta) >= SIZE_SHOWN:
        items.append(f"{change.size_delta / 1024:+.1f} KiB")
    return f"{change.name}: {', '.join(items)}"


# --- closures in this machine's store -----------------------------------------------------------


@dataclass(frozen=True)
class PathInfo:
    nar_size: int
    references: tuple[str, ...]


def parse_path_info(text: str) -> dict[str, PathInfo]:
    """`nix path-info --json`: a list of objects with `path` (Nix 2.8 … 2.18), or an object
    keyed by path (later Nix)."""
    data = json.loads(text)
    items = (
        [{**v, "path": k} for k, v in data.items() if isinstance(v, dict)]
        if isinstance(data, dict)
        else data
    )
    return {
        str(i["path"]): PathInfo(int(i.get("narSize") or 0), tuple(i.get("references") or ()))
        for i in items
        if isinstance(i, dict) and i.get("valid", True) is not False
    }


def closure_of(root: str, infos: Mapping[str, PathInfo]) -> dict[str, int]:
    """The closure of `root` within `infos` (which holds it all), with NAR sizes."""
    seen: dict[str, int] = {}
    todo = [root]
    while todo:
        path = todo.pop()
        if path in seen or path not in infos:
            continue
        info = infos[path]
        seen[path] = info.nar_size
        todo.extend(info.references)
    return seen


async def _path_infos(
    paths: Sequence[str], settings: NixSettings, what: str
) -> dict[str, PathInfo]:
    """The closures of store paths here, with sizes and references: one nix call."""
    done = await proc.run(argv.path_info(paths, settings), what=what, error=CommandError)
    return parse_path_info(done.stdout)


class NarSizes:
    """The NAR sizes the copies of a deploy count their bytes with, read from this machine's
    store when a copy first asks: one `nix path-info` for the closures of every system of the
    deploy that is here by then (`roots`), not one per host (~14 ms of CPU each here, which a
    fleet's hosts share with the copies); a copy of paths outside those reads its own."""

    def __init__(self, roots: Iterable[str] = (), settings: NixSettings | None = None) -> None:
        self._roots = tuple(dict.fromkeys(roots))
        self._settings = settings or NixSettings()
        self._reads: list[tuple[frozenset[str], asyncio.Task[dict[str, PathInfo]]]] = []

    async def of(self, paths: Sequence[str]) -> dict[str, int]:
        """The NAR size of every path in the closures of `paths` (the copy's own, though the
        read may have covered more); a copy that stops waiting does not stop a read others
        share."""
        wanted = frozenset(paths)
        read = next((task for covered, task in self._reads if wanted <= covered), None)
        infos = await asyncio.shield(read or self._read(wanted))
        found: dict[str, int] = {}
        for path in paths:
            found.update(closure_of(path, infos))
        return found

    def _read(self, wanted: frozenset[str]) -> asyncio.Task[dict[str, PathInfo]]:
        # (a system still being built is not in the store yet: read when its copy asks)
        roots = wanted | {r for r in self._roots if os.path.exists(r)}
        read = asyncio.ensure_future(
            _path_infos(sorted(roots), self._settings, "reading the NAR sizes of the paths to copy")
        )
        # (not retrieved when every copy that waited for it gave up first)
        read.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._reads.append((roots, read))
        return read

    async def close(self) -> None:
        """Stop the reads still under way (their copies have ended)."""
        for _, task in self._reads:
            task.cancel()
        await asyncio.gather(*(t for _, t in self._reads), return_exceptions=True)


async def local_closures(paths: Sequence[str], settings: NixSettings) -> dict[str, dict[str, int]]:
    """The closures of built store paths here, each with its NAR sizes: one nix call for all."""
    wanted = list(dict.fromkeys(paths))
    if not wanted:
        return {}
    infos = await _path_infos(wanted, settings, "reading the new systems' closures")
    return {p: closure_of(p, infos) for p in wanted}


# --- nix's dry run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """What `nix-store --realise --dry-run` says realising would take."""

    build: tuple[str, ...] = ()
    fetch: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


_SECTIONS = (
    (re.compile(r"^(this derivation|these \d+ derivations) will be built:"), "build"),
    (re.compile(r"^(this path|these \d+ paths) will be fetched\b"), "fetch"),
    (re.compile(r"^don't know how to build these paths"), "unknown"),
)


def parse_dry_run(text: str) -> DryRun:
    found: dict[str, list[str]] = {"build": [], "fetch": [], "unknown": []}
    current: list[str] | None = None
    for line in text.splitlines():
        for pattern, section in _SECTIONS:
            if pattern.match(line):
                current = found[section]
                break
        else:
            if current is not None and line.startswith("  /"):
                current.append(line.strip())
            elif not line.startswith(" "):
                current = None
    return DryRun(tuple(found["build"]), tuple(found["fetch"]), tuple(found["unknown"]))


async def dry_run(drvs: Sequence[str], settings: NixSettings) -> DryRun:
    """What building these derivations would build and fetch, building nothing."""
    if not drvs:
        return DryRun()
    done = await proc.run(
        argv.dry_run(drvs, settings),
        what="asking nix what the build would take",
        error=BuildError,
    )
    return parse_dry_run(done.stderr)
