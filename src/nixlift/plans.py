"""Plans: what a deploy would change, read before anything changes (`nixlift plan`, `deploy
--dry-run`, `--confirm`). Frozen values, as in model.py; a module of their own, as a deploy that
plans nothing does not create them (each frozen dataclass is ~2 ms of a start here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nixlift.goal import Goal


class ChangeKind(enum.StrEnum):
    """How one package name differs between two closures."""

    ADDED = "added"  # the old closure has no path of that name
    REMOVED = "removed"  # the new closure has none
    CHANGED = "changed"  # versions differ
    SIZE = "size"  # same versions, NAR size differs by 8 KiB or more


@dataclass(frozen=True)
class PackageChange:
    """One line of `nix store diff-closures`: a package name, the versions only the old closure
    has and those only the new one has ("" is a path without a version, nix's ε), and the
    change of that name's total NAR size (nix shows it from 8 KiB on)."""

    name: str
    kind: ChangeKind
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    size_delta: int = 0


class PlanState(enum.StrEnum):
    """What a deploy would do to one host."""

    CHANGES = "changes"  # it would run another system (or a system for the first time)
    UNCHANGED = "unchanged"  # it runs the system already
    UNREACHABLE = "unreachable"
    FAILED = "failed"  # its system could not be built, or the host could not be read


@dataclass(frozen=True)
class KeyPlan:
    """The keys and secrets a deploy would upload (names only: content never leaves here)."""

    #: new or changed on the host, or unknown there (first upload)
    write: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    #: paths nixlift wrote before that are no longer declared
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostPlan:
    """What a deploy would change on one host, read without changing it."""

    name: str
    state: PlanState
    #: what /run/current-system names now, and the profile's system
    current: str | None = None
    profile: str | None = None
    #: what it would run (None: not built, with --no-build)
    system: str | None = None
    #: False with --no-build when its system is not in this machine's store yet
    built: bool = True
    changes: tuple[PackageChange, ...] = ()
    #: what the copy would send: paths the host lacks and their NAR size
    copy_paths: int | None = None
    copy_bytes: int | None = None
    #: of those, what the host could fetch from its own substituters (None: substitutes off)
    fetch_paths: int | None = None
    fetch_bytes: int | None = None
    #: NAR size of the closure it runs now and of the one it would run
    closure_before: int | None = None
    closure_after: int | None = None
    #: whether activation would run, and why (the alwaysActivate rule)
    activates: bool = False
    activation_reason: str = ""
    #: the host's own `switch-to-configuration dry-activate` output (--dry-activate)
    dry_activate: tuple[str, ...] | None = None
    keys: KeyPlan | None = None
    #: things to know (another deployer holds the host's lock, …)
    notes: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None
    #: what kind of failure (an error class's `kind`), and the failing command's last lines
    error_kind: str | None = None
    detail: str | None = None

    def change_counts(self) -> dict[ChangeKind, int]:
        """How many packages were added, removed and changed in version (size-only changes are
        not counted)."""
        counted = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED)
        return {k: sum(c.kind is k for c in self.changes) for k in counted}


@dataclass(frozen=True)
class FleetPlan:
    """Every selected host's plan, in the network's order, and what building would take."""

    hosts: tuple[HostPlan, ...]
    goal: Goal = Goal.SWITCH
    #: --no-build: nix's dry run of the systems not built yet
    would_build: tuple[str, ...] = ()
    would_fetch: tuple[str, ...] = ()
    #: derivations nix could not say how to produce
    unknown: tuple[str, ...] = ()

    def count(self, state: PlanState) -> int:
        return sum(h.state is state for h in self.hosts)

    @property
    def copy_bytes(self) -> int:
        return sum(h.copy_bytes or 0 for h in self.hosts)

    @property
    def copy_unknown(self) -> int:
        """Changing hosts whose copy is not known (their systems are not built here), so not
        in copy_bytes."""
        return sum(h.state is PlanState.CHANGES and h.copy_bytes is None for h in self.hosts)

    def common_changes(self, limit: int = 5) -> list[tuple[str, int]]:
        """The package names that change on most hosts, with how many: most first. A host's
        own system (`nixos-system-NAME`, which changes with anything) is not counted."""
        seen: dict[str, int] = {}
        for h in self.hosts:
            own = (h.system or "").rsplit("/", 1)[-1].partition("-")[2]
            for c in h.changes:
                if c.kind is not ChangeKind.SIZE and not own.startswith(c.name + "-"):
                    seen[c.name] = seen.get(c.name, 0) + 1
        ranked = sorted(seen.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit]
