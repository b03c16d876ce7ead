"""A plan for people: one compact block per host, then the fleet's summary.

Drawn with rich on any stream: coloured on a terminal, plain text when the stream is not one
or NO_COLOR is set (rich decides both); never wrapped, so that a piped plan stays one item a
line.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.text import Text

from nixlift.plans import ChangeKind, FleetPlan, HostPlan, PlanState
from nixlift.ui.format import DETAIL_LINES, format_bytes
from nixlift.ui.live import clean_line, short_store_path
from nixlift.ui.planwords import CHANGE_SIGNS, change_text

STATE_STYLE = {
    PlanState.CHANGES: "bold yellow",
    PlanState.UNCHANGED: "green",
    PlanState.UNREACHABLE: "bold red",
    PlanState.FAILED: "bold red",
}
CHANGE_STYLE = {
    ChangeKind.ADDED: "green",
    ChangeKind.REMOVED: "red",
    ChangeKind.CHANGED: "yellow",
    ChangeKind.SIZE: "dim",
}


def _system(path: str | None) -> str:
    return short_store_path(path) if path else "nothing"


def host_lines(plan: HostPlan) -> list[Text]:
    """The block of one host."""
    head = Text.assemble((plan.name, "bold"), "  ", (plan.state.value, STATE_STYLE[plan.state]))
    lines = [head]
    if plan.state in (PlanState.UNREACHABLE, PlanState.FAILED):
        head.append(f"  {clean_line(plan.error or '')}", "red")
        if plan.detail and plan.detail.strip() not in (plan.error or ""):
            tail = plan.detail.splitlines()[-DETAIL_LINES:]
            lines += [Text.assemble(("  | ", "dim"), clean_line(line)) for line in tail]
        if plan.hint:
            lines.append(Text.assemble("  ", ("hint: ", "bold"), clean_line(plan.hint)))
        return lines
    if plan.state is PlanState.UNCHANGED:
        head.append(f"  runs {_system(plan.system)}", "dim")
    else:
        head.append(f"  {_system(plan.current)} → {_system(plan.system)}", "dim")
    for change in plan.changes:
        lines.append(
            Text.assemble(
                "  ",
                (f"{CHANGE_SIGNS[change.kind]} {change_text(change)}", CHANGE_STYLE[change.kind]),
            )
        )
    if plan.state is PlanState.CHANGES and plan.system is not None and not plan.built:
        lines.append(Text("  not built yet: package changes are known once it is", "dim"))
    elif plan.state is PlanState.CHANGES and plan.copy_paths is not None and not plan.changes:
        lines.append(Text("  no package changes (other files of the system differ)", "dim"))
    details = _details(plan)
    if details:
        lines.append(Text("  " + " · ".join(details), "dim"))
    activation = "activates" if plan.activates else "no activation"
    lines.append(Text(f"  {activation}: {plan.activation_reason}", "dim"))
    if plan.keys is not None:
        lines.append(Text("  " + _keys(plan), "dim"))
    if plan.dry_activate is not None:
        lines.append(Text("  dry-activate:", "cyan"))
        lines += [Text.assemble(("  │ ", "dim"), clean_line(line)) for line in plan.dry_activate]
    lines += [Text(f"  note: {clean_line(note)}", "magenta") for note in plan.notes]
    return lines


def _details(plan: HostPlan) -> list[str]:
    found = []
    if plan.state is PlanState.CHANGES and plan.copy_paths is not None:
        if plan.copy_paths and plan.copy_bytes is not None:
            copy = f"copy {plan.copy_paths} paths, {format_bytes(plan.copy_bytes)}"
            if plan.fetch_paths:
                copy += (
                    f" ({plan.fetch_paths} of them, {format_bytes(plan.fetch_bytes or 0)}, "
                    "from its own caches)"
                )
            found.append(copy)
        else:
            found.append("nothing to copy")
    if plan.closure_after is not None:
        if plan.closure_before is not None and plan.closure_before != plan.closure_after:
            found.append(
                f"closure {format_bytes(plan.closure_before)} → {format_bytes(plan.closure_after)}"
            )
        else:
            found.append(f"closure {format_bytes(plan.closure_after)}")
    return found


def _keys(plan: HostPlan) -> str:
    assert plan.keys is not None
    k = plan.keys
    parts = []
    if k.write:
        parts.append(f"uploads {', '.join(k.write)}")
    if k.unchanged:
        parts.append(f"{len(k.unchanged)} unchanged")
    if k.remove:
        parts.append(f"removes {', '.join(k.remove)}")
    return "keys: " + ("; ".join(parts) or "none")


def summary_lines(plan: FleetPlan) -> list[Text]:
    """The fleet: how many hosts change, stay, cannot be reached; bytes to copy; what changes on
    most hosts; and, with --no-build, what building would take."""
    total = len(plan.hosts)
    head = Text(f"{total} host{'s' if total != 1 else ''}: ", "bold")
    counts = []
    for state, word in (
        (PlanState.CHANGES, "changing"),
        (PlanState.UNCHANGED, "unchanged"),
        (PlanState.UNREACHABLE, "unreachable"),
        (PlanState.FAILED, "failed"),
    ):
        n = plan.count(state)
        if n or state in (PlanState.CHANGES, PlanState.UNCHANGED):
            counts.append(Text(f"{n} {word}", STATE_STYLE[state] if n else "dim"))
    head.append_text(Text(", ").join(counts))
    head.append(f" · {format_bytes(plan.copy_bytes)} to copy")
    unknown = plan.copy_unknown
    if unknown:
        # (a sum that leaves hosts out must say so, or "0 B" reads as "nothing")
        head.append(f" ({unknown} host{'s' if unknown != 1 else ''} not counted: not built here)")
    lines = [head]
    common = plan.common_changes()
    if common:
        lines.append(
            Text(
                "changes on most hosts: "
                + ", ".join(f"{name} ({n} host{'s' if n != 1 else ''})" for name, n in common)
            )
        )
    if plan.would_build or plan.would_fetch:
        lines.append(
            Text(
                f"building would build {len(plan.would_build)} derivations and fetch "
                f"{len(plan.would_fetch)} paths here"
            )
        )
        lines += [Text(f"  build {short_store_path(p)}", "dim") for p in plan.would_build]
        lines += [Text(f"  fetch {short_store_path(p)}", "dim") for p in plan.would_fetch]
    if plan.unknown:
        lines.append(Text(f"nix does not know how to build {len(plan.unknown)} paths", "red"))
    return lines


def render_plan(plan: FleetPlan, stream: TextIO, *, color: str = "auto") -> None:
    """`color`: "auto" (rich decides: a terminal, NO_COLOR), "always" or "never" (--color)."""
    console = Console(
        file=stream,
        highlight=False,
        soft_wrap=True,
        force_terminal=True if color == "always" else None,
        color_system=None if color == "never" else "auto",
    )
    for host in plan.hosts:
        for line in host_lines(host):
            console.print(line)
    console.print()
    for line in summary_lines(plan):
        console.print(line)
