"""Commands about the network itself and its names: eval, info, create, list, delete."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from nixlift import registry as reg
from nixlift.cli.access import reach
from nixlift.cli.options import Invocation
from nixlift.cli.output import (
    document,
    machine_json,
    normalize_time,
    plan_error,
    print_json,
    print_table,
    short_path,
    target_text,
)
from nixlift.cli.screen import interrupts
from nixlift.cli.source import evaluate_request, resolve, with_network_config
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.plan import Planner, PlanOptions
from nixlift.errors import UsageError
from nixlift.events import discard
from nixlift.plans import PlanState
from nixlift.selection import Selection
from nixlift.ui.planwords import plan_summary


async def cmd_eval(inv: Invocation) -> int:
    network = await evaluate_request(await resolve(inv.network))
    if inv.output.json:
        print_json(
            document(
                "eval",
                deployment=network.deployment_name,
                description=network.description,
                source=network.source,
                output=network.output,
                notices=list(network.notices),
                machines=[machine_json(m) for m in network.machines],
            )
        )
        return 0
    if network.description:
        print(f"# {network.description}", file=sys.stderr)
    rows = [(m.name, m.system, target_text(m), m.drv_path) for m in network.machines]
    print_table(("MACHINE", "SYSTEM", "TARGET", "DRV"), rows)
    return 0


async def cmd_info(inv: Invocation) -> int:
    req = await resolve(inv.network)
    network = await evaluate_request(req)
    settings = with_network_config(req.settings, network)
    # What `plan --no-build` reads: each host's state, and, for a host that runs another system
    # whose new one is built here already, why it is out of date (its package changes and what
    # the copy would send), changing nothing.
    options = PlanOptions(
        deploy=DeployOptions(settings=settings, reach=reach(inv, network.machines)),
        no_build=True,
        ask_nix=False,
        parallel=inv.fleet.parallel,
    )
    planner = Planner(network, options, discard)
    with interrupts(planner.interrupt):
        plan = await planner.run()
    rows: list[dict[str, Any]] = []
    for m, found in zip(network.machines, plan.hosts, strict=True):
        row: dict[str, Any] = {
            "name": m.name,
            "target": target_text(m),
            "system": m.system,
            "out_path": m.out_path,
            "running": None,
            "profile": None,
            "error": None,
            "why": None,
            "changes": None,
        }
        if found.state in (PlanState.UNREACHABLE, PlanState.FAILED):
            row.update(state="unreachable", error=plan_error(found))
        else:
            running = found.current
            row.update(
                running=running,
                profile=found.profile,
                state="up-to-date"
                if running == m.out_path
                else "not-deployed"
                if running is None
                else "out-of-date",
            )
            if running != m.out_path:
                row["why"] = plan_summary(found)
                if found.copy_bytes is not None:
                    row["changes"] = {
                        kind.value: n for kind, n in found.change_counts().items()
                    } | {"copy_bytes": found.copy_bytes}
        rows.append(row)
    if inv.output.json:
        print_json(
            document(
                "info",
                deployment=network.deployment_name,
                source=network.source,
                output=network.output,
                hosts=rows,
            )
        )
    else:
        print_table(
            ("MACHINE", "TARGET", "SYSTEM", "RUNNING", "BUILDS", "STATE", "WHY"),
            [
                (
                    r["name"],
                    r["target"],
                    r["system"],
                    short_path(r["running"]),
                    short_path(r["out_path"]),
                    r["state"].replace("-", " "),
                    r["why"] or "-",
                )
                for r in rows
            ],
        )
        for r in rows:
            if r["error"] is not None:
                print(
                    f"{r['name']}: {r['error']['message']}\n  hint: {r['error']['hint']}",
                    file=sys.stderr,
                )
    if planner.interrupted:
        return 130
    return 1 if any(r["state"] == "unreachable" for r in rows) else 0


async def cmd_create(inv: Invocation) -> int:
    choice = inv.network
    if not choice.deployment:
        raise UsageError(
            "create needs a name: nixlift create NETWORK.nix -d NAME "
            "(or nixlift create --flake REF -d NAME)"
        )
    if not choice.files and choice.flake is None:
        raise UsageError(
            "create needs network files or a flake",
            hint=f"nixlift create NETWORK.nix -d {choice.deployment}, or "
            f"nixlift create --flake REF[#ATTR] -d {choice.deployment}",
        )
    req = await resolve(choice)
    # Evaluate the names now, so a wrong file is found at create time, not at the first deploy.
    network = await evaluate_request(replace(req, selection=Selection()), machines="none")
    flake = req.source.flake
    entry = reg.Registry().put(
        reg.Entry(
            name=choice.deployment,
            files=tuple(str(f.resolve()) for f in req.source.files),
            args=req.source.args.exprs,
            argstrs=req.source.args.strings,
            include=req.settings.include,
            flake=None if flake is None else flake.absolute().text,
        ),
        replace_existing=inv.replace,
    )
    print(
        f"registered '{entry.name}': {entry.shown} (machines: {', '.join(network.all_names)})",
        file=sys.stderr,
    )
    print(entry.name)
    return 0


async def cmd_list(inv: Invocation) -> int:
    entries = reg.Registry().entries()
    if inv.output.json:
        print_json(
            document(
                "list",
                deployments=[
                    {"name": e.name, **e.to_json(), "created": normalize_time(e.created)}
                    for e in entries
                ],
            )
        )
    elif entries:
        print_table(("NAME", "NETWORK", "CREATED"), [(e.name, e.shown, e.created) for e in entries])
    else:
        print("no deployments registered (nixlift create NETWORK.nix -d NAME)", file=sys.stderr)
    return 0


async def cmd_delete(inv: Invocation) -> int:
    name = inv.network.deployment
    if not name:
        raise UsageError("delete needs a name: nixlift delete -d NAME")
    reg.Registry().delete(name)
    print(f"forgot '{name}' (its hosts are untouched)", file=sys.stderr)
    return 0
