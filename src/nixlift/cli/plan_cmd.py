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
from nixlift.cli.evaluated import Evaluated, evaluate_checked
from nixlift.cli.options import Invocation, Output
from nixlift.cli.output import document, plan_error, print_json
from nixlift.cli.preflight import declared_keys, refuse_other_backends
from nixlift.cli.screen import interrupts
from nixlift.deploy.fanout import Reach
from nixlift.deploy.options import DeployOptions, default_build_parallel
from nixlift.deploy.plan import Planner, PlanOptions
from nixlift.events import Emit, Event, Finished, Notice, Phase, discard
from nixlift.model import Stage
from nixlift.plans import FleetPlan, HostPlan, PlanState
from nixlift.ui.plain import PlainRenderer


def plan_json(plan: FleetPlan, evaluated: Evaluated, *, no_build: bool) -> dict[str, Any]:
    """The plan as one JSON document (the one place its shape is decided, schemas/plan.json)."""
    network = evaluated.network
    return document(
        "plan",
        deployment=network.deployment_name,
        source=network.source,
        output=network.output,
        goal=plan.goal.value,
        hosts=[host_json(h) for h in plan.hosts],
        summary={
            "changing": plan.count(PlanState.CHANGES),
            "unchanged": plan.count(PlanState.UNCHANGED),
            "unreachable": plan.count(PlanState.UNREACHABLE),
            "failed": plan.count(PlanState.FAILED),
            "copy_bytes": plan.copy_bytes,
            "copy_unknown": plan.copy_unknown,
            "common_changes": [{"name": n, "hosts": c} for n, c in plan.common_changes()],
        },
        # only --no-build asks nix what building would take
        build={
            "would_build": list(plan.would_build),
            "would_fetch": list(plan.would_fetch),
            "unknown": list(plan.unknown),
        }
        if no_build
        else None,
    )


def host_json(h: HostPlan) -> dict[str, Any]:
    """One host's plan; what is not known for it (a host not read, a system not built) is
    null."""
    read = h.state in (PlanState.CHANGES, PlanState.UNCHANGED)
    known = h.copy_paths is not None
    return {
        "name": h.name,
        "state": h.state.value,
        "current": h.current,
        "profile": h.profile,
        "system": h.system,
        "built": h.built if read else None,
        "packages": [
            {
                "name": c.name,
                "change": c.kind.value,
                "old_versions": list(c.removed),
                "new_versions": list(c.added),
                "size_delta": c.size_delta,
            }
            for c in h.changes
        ]
        if known
        else None,
        "copy": {
            "paths": h.copy_paths,
            "bytes": h.copy_bytes,
            "fetchable_paths": h.fetch_paths,
            "fetchable_bytes": h.fetch_bytes,
        }
        if known
        else None,
        "closure_bytes_before": h.closure_before,
        "closure_bytes_after": h.closure_after,
        "activation": {"runs": h.activates, "reason": h.activation_reason} if read else None,
        "dry_activate": list(h.dry_activate) if h.dry_activate is not None else None,
        "keys": {
            "upload": list(h.keys.write),
            "unchanged": list(h.keys.unchanged),
            "remove": list(h.keys.remove),
        }
        if h.keys is not None
        else None,
        "notes": list(h.notes),
        "error": plan_error(h),
    }


def render_plan(plan: FleetPlan, stream: TextIO, output: Output) -> None:
    # imported on use: rich costs every command start-up time (and apply-local runs nixlift
    # where it may be missing), only a plan for people needs it
    from nixlift.ui.plan import render_plan as render

    render(plan, stream, color=output.color)


def progress(output: Output, stream: TextIO = sys.stderr) -> Emit:
    """A plan's progress on stderr: with -v every step; with -q none; otherwise only builds
    and notices (a plan of systems already built prints nothing before the plan)."""
    if output.quiet:
        return discard
    plain = PlainRenderer(stream, verbose=True)

    def emit(event: Event) -> None:
        if output.verbose:
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
            progress(inv.output),
            gc_roots=roots,
        )
    finally:
        rmtree(roots, ignore_errors=True)
    if inv.output.json:
        print_json(plan_json(plan, evaluated, no_build=inv.no_build))
    else:
        render_plan(plan, sys.stdout, inv.output)
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
    plan, interrupted = await make_plan(inv, evaluated, how, progress(inv.output), gc_roots=roots)
    if interrupted:
        return 130
    render_plan(plan, sys.stderr, inv.output)
    count = len(plan.hosts)
    if inv.yes:
        print("nixlift: --yes: deploying without asking", file=sys.stderr)
        return None
    if ask(f"Deploy to {count} host{'s' if count != 1 else ''}? [y/N] "):
        return None
    print("nixlift: not deployed; nothing was changed on any host", file=sys.stderr)
    return 1
