"""The words for plans (`nixlift plan`, `info`): a package change, a host's changes in one
line. Apart from ui/format.py, which every deploy imports, as plans have types of their own."""

from __future__ import annotations

from nixlift.plans import ChangeKind, HostPlan, PackageChange, PlanState
from nixlift.ui.format import format_bytes


def _versions(versions: tuple[str, ...]) -> str:
    return ", ".join("ε" if v == "" else v for v in versions) or "∅"


#: the sign a change is listed with
CHANGE_SIGNS = {
    ChangeKind.ADDED: "+",
    ChangeKind.REMOVED: "\N{MINUS SIGN}",
    ChangeKind.CHANGED: "~",
    ChangeKind.SIZE: "±",
}


def change_text(change: PackageChange) -> str:
    """`jq 1.7.1`, `hello 2.12.1`, `curl 8.6.0 → 8.7.1`, `glibc +48.7 KiB` (after its sign)."""
    if change.kind is ChangeKind.ADDED:
        text = f"{change.name} {_versions(change.added)}"
    elif change.kind is ChangeKind.REMOVED:
        text = f"{change.name} {_versions(change.removed)}"
    elif change.kind is ChangeKind.CHANGED:
        text = f"{change.name} {_versions(change.removed)} → {_versions(change.added)}"
    else:
        text = change.name
    if change.kind is not ChangeKind.SIZE:
        return text
    sign = "+" if change.size_delta > 0 else "-"
    return f"{text} {sign}{format_bytes(abs(change.size_delta))}"


def change_counts(plan: HostPlan) -> str:
    """`+3 -1 ~2 packages` (with a minus sign, not a hyphen): the kinds of a host's changes;
    size-only changes are not counted."""
    shown = [f"{CHANGE_SIGNS[k]}{n}" for k, n in plan.change_counts().items() if n]
    return f"{' '.join(shown)} packages" if shown else "no package changes"


def plan_summary(plan: HostPlan) -> str:
    """One line: `+3 -1 ~2 packages, 41.2 MiB to copy` (what `info` says of an out-of-date
    host)."""
    if plan.state is PlanState.UNCHANGED:
        return "unchanged"
    if plan.state in (PlanState.UNREACHABLE, PlanState.FAILED):
        return plan.error or plan.state.value
    if plan.copy_bytes is None:
        return "its new system is not built here yet (nixlift plan builds it and tells)"
    copy = f"{format_bytes(plan.copy_bytes)} to copy" if plan.copy_paths else "nothing to copy"
    return f"{change_counts(plan)}, {copy}"
