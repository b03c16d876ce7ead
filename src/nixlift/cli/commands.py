"""The commands. Each turns parsed arguments into core calls and renders what comes back."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from nixlift import registry as reg
from nixlift.cli import hosts_cmd, remote_cmd
from nixlift.cli.render import final_summary, progress_renderer
from nixlift.cli.source import Request, resolve, split_goal, with_network_config
from nixlift.deploy import history, hoststate
from nixlift.deploy.pipeline import Deployment, DeployOptions
from nixlift.deploy.rollout import FailurePolicy
from nixlift.errors import NixliftError, UsageError
from nixlift.events import Emit, tee
from nixlift.model import Goal, HostResult, Machine, Network, Status
from nixlift.nix import platforms
from nixlift.nix.argv import NixSettings
from nixlift.nix.evaluate import evaluate
from nixlift.selection import Selection
from nixlift.ui.logdir import LogDir


async def dispatch(args: argparse.Namespace) -> int:
    handler = {
        "deploy": cmd_deploy,
        "build": cmd_build,
        "eval": cmd_eval,
        "info": cmd_info,
        "create": cmd_create,
        "list": cmd_list,
        "delete": cmd_delete,
        "rollback": hosts_cmd.cmd_rollback,
        "check": hosts_cmd.cmd_check,
        "list-generations": hosts_cmd.cmd_list_generations,
        "history": hosts_cmd.cmd_history,
        "exec": remote_cmd.cmd_exec,
        "ssh": remote_cmd.cmd_ssh,
    }[args.command]
    return await handler(args)


# --- commands -----------------------------------------------------------------------------------


async def cmd_eval(args: argparse.Namespace) -> int:
    req = resolve(args)
    network = await evaluate(req.source, req.selection, req.settings)
    if args.json:
        _print_json({
            "deployment": network.deployment_name,
            "description": network.description,
            "machines": [_machine_json(m) for m in network.machines],
        })
        return 0
    if network.description:
        print(f"# {network.description}", file=sys.stderr)
    rows = [(m.name, m.system, _target_text(m), m.drv_path) for m in network.machines]
    _print_table(("MACHINE", "SYSTEM", "TARGET", "DRV"), rows)
    return 0


async def _evaluate_checked(args: argparse.Namespace) -> tuple[Request, Network, NixSettings]:
    req = resolve(args)
    network = await evaluate(req.source, req.selection, req.settings)
    settings = with_network_config(req.settings, network)
    if not platforms.all_native(network, settings):
        platforms.check(await platforms.probe(settings), network.machines)
    return req, network, settings


async def cmd_build(args: argparse.Namespace) -> int:
    return await _run_pipeline(args, Goal.BUILD)


async def cmd_deploy(args: argparse.Namespace) -> int:
    positional = split_goal(args)
    if positional is not None and args.goal_flag and positional.value != args.goal_flag:
        raise UsageError(f"two goals given: '{positional.value}' and --{args.goal_flag}")
    goal = positional or (Goal(args.goal_flag) if args.goal_flag else Goal.SWITCH)
    return await _run_pipeline(args, goal)


async def _run_pipeline(args: argparse.Namespace, goal: Goal) -> int:
    _, network, settings = await _evaluate_checked(args)
    keep = bool(args.keep_result)
    roots = _gc_root_dir(network.deployment_name) if keep else Path(
        tempfile.mkdtemp(prefix="nixlift-roots-"))
    options = DeployOptions(
        goal=goal,
        settings=settings,
        gc_roots=roots,
        keep_roots=keep,
        force_activate=bool(getattr(args, "always_activate", False)),
        connect_timeout=args.connect_timeout,
        parallel=args.parallel,
        policy=FailurePolicy.parse(args.fail_fast, args.max_failures),
        skip_unreachable=args.skip_unreachable,
        lock_wait=getattr(args, "lock_wait", 0),
        auto_rollback=not getattr(args, "no_auto_rollback", False),
        magic_rollback=not getattr(args, "no_magic_rollback", False),
        health_checks=not getattr(args, "no_checks", False),
        reboot=getattr(args, "reboot", False),
        allow_reboot=getattr(args, "allow_reboot", False),
        reboot_timeout=getattr(args, "reboot_timeout", 300),
        commit=await history.network_commit(network.files) if goal.activates else None,
        **({"build_parallel": args.build_parallel} if args.build_parallel else {}),
    )
    label = network.description or network.deployment_name
    print(f"{goal.value}: {label} ({len(network.machines)} machine"
          f"{'s' if len(network.machines) != 1 else ''})", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        show = stack.enter_context(progress_renderer(args))
        sinks: list[Emit] = [show]
        if args.log_dir:
            log_dir = LogDir(Path(args.log_dir))
            stack.callback(log_dir.close)
            sinks.append(log_dir)
        deployment = Deployment(network, options, tee(*sinks))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, deployment.interrupt)
            stack.callback(loop.remove_signal_handler, sig)
        try:
            results = await deployment.run()
        finally:
            if not keep:
                shutil.rmtree(roots, ignore_errors=True)
    final_summary(args, results)
    if args.json:
        _print_json({
            "deployment": network.deployment_name,
            "goal": goal.value,
            "hosts": [_result_json(r) for r in results],
        })
    elif goal is Goal.BUILD:
        for r in results:
            if r.succeeded and r.system:
                print(r.system)
    if deployment.rollout.interrupted:
        return 130
    return 0 if all(r.succeeded or r.status is Status.SKIPPED for r in results) else 1


def _gc_root_dir(deployment: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(state) / "nixlift" / "gcroots" / deployment
    path.mkdir(parents=True, exist_ok=True)
    return path


async def cmd_info(args: argparse.Namespace) -> int:
    req = resolve(args)
    network = await evaluate(req.source, req.selection, req.settings)

    probes = await hosts_cmd.on_each(
        network, args, lambda m, session: hoststate.probe(session, m.out_path))
    rows: list[dict[str, Any]] = []
    for m in network.machines:
        row: dict[str, Any] = {**_machine_json(m), "running": None, "profile": None}
        found = probes[m.name]
        if isinstance(found, NixliftError):
            row.update(state="unreachable", error=str(found), hint=found.hint)
        else:
            running = found.state.current_system
            row.update(running=running, profile=found.state.profile_system,
                       state="up to date" if running == m.out_path else
                       "not deployed" if running is None else "out of date")
        rows.append(row)
    if args.json:
        _print_json({"deployment": network.deployment_name, "machines": rows})
    else:
        _print_table(
            ("MACHINE", "TARGET", "SYSTEM", "RUNNING", "BUILDS", "STATE"),
            [(r["name"], r["target"], r["system"], _short(r["running"]), _short(r["outPath"]),
              r["state"]) for r in rows],
        )
        for r in rows:
            if r["state"] == "unreachable":
                print(f"{r['name']}: {r['error']}\n  hint: {r['hint']}", file=sys.stderr)
    return 1 if any(r["state"] == "unreachable" for r in rows) else 0


async def cmd_create(args: argparse.Namespace) -> int:
    if not args.deployment:
        raise UsageError("create needs a name: nixlift create NETWORK.nix -d NAME")
    req = resolve(args)
    # Evaluate the names now, so a wrong file is found at create time, not at the first deploy.
    network = await evaluate(req.source, Selection(), req.settings, machines="none")
    entry = reg.Registry().put(reg.Entry(
        name=args.deployment,
        files=tuple(str(f.resolve()) for f in req.source.files),
        args=req.source.args.exprs,
        argstrs=req.source.args.strings,
        include=req.settings.include,
    ))
    print(f"registered '{entry.name}': {', '.join(entry.files)} "
          f"(machines: {', '.join(network.all_names)})", file=sys.stderr)
    print(entry.name)
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    entries = reg.Registry().entries()
    if args.json:
        _print_json([{"name": e.name, **e.to_json()} for e in entries])
    elif entries:
        _print_table(("NAME", "FILES", "CREATED"),
                     [(e.name, " ".join(e.files), e.created) for e in entries])
    else:
        print("no deployments registered (nixlift create NETWORK.nix -d NAME)", file=sys.stderr)
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    reg.Registry().delete(args.deployment)
    print(f"forgot '{args.deployment}' (its hosts are untouched)", file=sys.stderr)
    return 0


# --- rendering ----------------------------------------------------------------------------------


def _target_text(m: Machine) -> str:
    d = m.deployment
    user = f"{d.target_user}@" if d.target_user else ""
    port = f":{d.target_port}" if d.target_port else ""
    return f"{user}{d.target_host}{port}"


def _machine_json(m: Machine) -> dict[str, Any]:
    return {
        "name": m.name,
        "system": m.system,
        "hostPlatform": m.host_platform,
        "target": _target_text(m),
        "deployment": m.deployment.raw,
        "drvPath": m.drv_path,
        "outPath": m.out_path,
    }


def _result_json(r: HostResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "status": r.status.value,
        "succeeded": r.succeeded,
        "system": r.system,
        "copied": r.copied,
        "activated": r.activated,
        "durations": dict(r.durations),
        "error": r.error,
        "hint": r.hint,
        "rebootRequired": r.status is Status.REBOOT_REQUIRED,
    }


def _short(path: str | None) -> str:
    if not path:
        return "-"
    base = path.rsplit("/", 1)[-1]
    return base[:8] + "…" + base[32:] if len(base) > 33 else base


def _print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    table = [header, *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
