"""`nixlift plan`: what a deploy would change on each host, changing none; and the plan
`deploy --confirm` shows before it asks.

The plan is the command's data, so it goes to stdout (a block per host and the fleet's summary,
or with --json one document); progress and notices go to stderr. Under `deploy --confirm` the
plan is a question put to a person, so it goes to stderr there, with the prompt.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from shutil import rmtree
from typing import Any, TextIO

from nixlift.cli.access import reach
from nixlift.cli.deploy_cmd import Evaluated, declared_keys, evaluate_checked, refuse_other_backends
from nixlift.cli.options import Invocation
from nixlift.cli.output import print_json
from nixlift.cli.screen import interrupts
from nixlift.deploy.fanout import Reach
from nixlift.deploy.options import DeployOptions, default_build_parallel
from nixlift.deploy.plan import Planner, PlanOptions
from nixlift.events import Emit, Event, Finished, Notice, Phase
from nixlift.model import FleetPlan, HostPlan, PlanState, Stage
from nixlift.ui.plain import PlainRenderer
from nixlift.ui.plan import render_plan


def plan_json(plan: FleetPlan, evaluated: Evaluated) -> dict[str, Any]:
    """The plan as one JSON document (the one place its shape is decided): per host only the
    fields that are true for it."""
    network = evaluated.network
    return {
        "version": 1,
        "command": "plan",
        "deployment": network.deployment_name,
        "source": network.source,
        "goal": plan.goal.value,
        "hosts": [host_json(h) for h in plan.hosts],
        "summary": {
            "changing": plan.count(PlanState.CHANGES),
            "unchanged": plan.count(PlanState.UNCHANGED),
            "unreachable": plan.count(PlanState.UNREACHABLE),
            "failed": plan.count(PlanState.FAILED),
            "copy_bytes": plan.copy_bytes,
            "common_changes": [{"name": n, "hosts": c} for n, c in plan.common_changes()],
        },
        **(
            {
                "build": {
                    "would_build": list(plan.would_build),
                    "would_fetch": list(plan.would_fetch),
                    "unknown": list(plan.unknown),
                }
            }
            if plan.would_build or plan.would_fetch or plan.unknown
            else {}
        ),
    }


def host_json(h: HostPlan) -> dict[str, Any]:
    data: dict[str, Any] = {"name": h.name, "state": h.state.value}
    if h.state in (PlanState.UNREACHABLE, PlanState.FAILED):
        data["error"] = {
            "kind": h.state.value,
            "message": h.error or "",
            "hint": h.hint,
            "log_tail": None,
        }
        return data
    data.update(current=h.current, profile=h.profile, system=h.system, built=h.built)
    if h.copy_paths is not None:
        data["packages"] = [
            {
                "name": c.name,
                "change": c.kind.value,
                "old_versions": list(c.removed),
                "new_versions": list(c.added),
                "size_delta": c.size_delta,
            }
            for c in h.changes
        ]
        data["copy"] = {"paths": h.copy_paths, "bytes": h.copy_bytes}
        if h.fetch_paths is not None:
            data["copy"].update(fetchable_paths=h.fetch_paths, fetchable_bytes=h.fetch_bytes)
    if h.closure_before is not None:
        data["closure_bytes_before"] = h.closure_before
    if h.closure_after is not None:
        data["closure_bytes_after"] = h.closure_after
    data["activation"] = {"runs": h.activates, "reason": h.activation_reason}
    if h.dry_activate is not None:
        data["dry_activate"] = list(h.dry_activate)
    if h.keys is not None:
        data["keys"] = {
            "upload": list(h.keys.write),
            "unchanged": list(h.keys.unchanged),
            "remove": list(h.keys.remove),
        }
    if h.notes:
        data["notes"] = list(h.notes)
    return data


def progress(verbose: bool, stream: TextIO = sys.stderr) -> Emit:
    """A plan's progress on stderr: with -v every step; otherwise only builds and notices (a
    plan of systems already built prints nothing before the plan)."""
    plain = PlainRenderer(stream, verbose=True)

    def emit(event: Event) -> None:
        if verbose:
            if not isinstance(event, Finished):
                plain(event)
        elif isinstance(event, Notice) or (
            isinstance(event, Phase)
            and event.phase in (Stage.BUILD, Stage.COPY, Stage.ACTIVATE)
            and event.detail != "already built"
        ):
            plain(event)

    return emit


async def make_plan(
    inv: Invocation,
    evaluated: Evaluated,
    how: Reach,
    emit: Emit,
    *,
    gc_roots: Path,
) -> tuple[FleetPlan, bool]:
    """The plan of the selected machines (built with GC roots in `gc_roots`); and whether it was
    interrupted."""
    network = evaluated.network
    refuse_other_backends(network)
    options = PlanOptions(
        deploy=DeployOptions(
            goal=inv.goal,
            settings=evaluated.settings,
            gc_roots=gc_roots,
            force_activate=inv.safety.always_activate,
            reach=how,
            build_parallel=inv.fleet.build_parallel or default_build_parallel(),
            upload_keys=inv.upload_keys,
            build_host=inv.build_host,
        ),
        no_build=inv.no_build,
        dry_activate=inv.dry_activate_plan,
    )
    planner = Planner(network, options, emit, keys=declared_keys(inv, network))
    with interrupts(planner.interrupt):
        plan = await planner.run()
    return plan, planner.interrupted


async def cmd_plan(inv: Invocation) -> int:
    evaluated = await evaluate_checked(inv)
    network = evaluated.network
    roots = Path(tempfile.mkdtemp(prefix="nixlift-roots-"))
    try:
        plan, interrupted = await make_plan(
            inv,
            evaluated,
            reach(inv, network.machines),
            progress(inv.output.verbose),
            gc_roots=roots,
        )
    finally:
        rmtree(roots, ignore_errors=True)
    if inv.output.json:
        print_json(plan_json(plan, evaluated))
    else:
        render_plan(plan, sys.stdout)
    if interrupted:
        return 130
    bad = plan.count(PlanState.UNREACHABLE) + plan.count(PlanState.FAILED)
    return 1 if bad else 0


def ask(question: str) -> bool:
    """A yes/no question on the terminal (the prompt on stderr: stdout carries data)."""
    print(question, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    return line.strip().lower() in ("y", "yes")


async def confirmed(inv: Invocation, evaluated: Evaluated, how: Reach, roots: Path) -> int | None:
    """deploy --confirm: the plan on stderr (a question put to a person), then `Deploy to N
    hosts? [y/N]`. None: go on and deploy; else the exit status to end with."""
    plan, interrupted = await make_plan(
        inv, evaluated, how, progress(inv.output.verbose), gc_roots=roots
    )
    if interrupted:
        return 130
    render_plan(plan, sys.stderr)
    count = len(plan.hosts)
    if inv.yes:
        print("nixlift: --yes: deploying without asking", file=sys.stderr)
        return None
    if ask(f"Deploy to {count} host{'s' if count != 1 else ''}? [y/N] "):
        return None
    print("nixlift: not deployed; nothing was changed on any host", file=sys.stderr)
    return 1
