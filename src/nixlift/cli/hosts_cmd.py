"""Commands that read or act on what the hosts themselves hold: their checks, generations and
deploy history, and manual rollback. They need the network only to know how to reach the
hosts."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nixlift.agent.answers import Generation
from nixlift.agent.protocol import Agent
from nixlift.cli.access import reach
from nixlift.cli.options import Invocation
from nixlift.cli.output import document, error_of, normalize_time, print_json, rfc3339
from nixlift.cli.screen import interrupts
from nixlift.cli.source import evaluate_request, resolve
from nixlift.deploy import health, keys
from nixlift.deploy.fanout import Fleet
from nixlift.deploy.lock import HostLock, holder_info
from nixlift.deploy.rollback import roll_back
from nixlift.errors import NixliftError
from nixlift.events import Phase, discard
from nixlift.model import Machine, Network, Stage
from nixlift.transport.base import Host
from nixlift.ui.format import error_lines
from nixlift.ui.plain import PlainRenderer

T = TypeVar("T")


async def targets(inv: Invocation) -> Network:
    """The selected machines, with only their deployment options evaluated (fast)."""
    return await evaluate_request(await resolve(inv.network), machines="deployment")


async def on_hosts(
    inv: Invocation,
    network: Network,
    work: Callable[[Machine, Host], Awaitable[T]],
    *,
    interruptible: bool = True,
) -> tuple[dict[str, T | NixliftError], bool]:
    """`work` on every selected host (see Fleet.each); also whether Ctrl-C stopped it."""
    async with Fleet(
        network.machines, reach(inv, network.machines), parallel=inv.fleet.parallel
    ) as fleet:
        with interrupts(fleet.interrupt):
            results = await fleet.each(work, interruptible=interruptible)
    return results, fleet.rollout.interrupted


def report_errors(results: dict[str, Any], interrupted: bool = False) -> int:
    """Each host's error on stderr; the exit status of the command."""
    failed = 0
    for r in results.values():
        if isinstance(r, NixliftError):
            failed += 1
            for line in error_lines(r):
                print(line, file=sys.stderr)
    if interrupted:
        return 130
    return 1 if failed else 0


def hosts_json(
    command: str,
    results: dict[str, T | NixliftError],
    fields: Callable[[T], dict[str, Any]],
    empty: dict[str, Any],
) -> dict[str, Any]:
    """A hosts command's JSON document: per host its fields, or `empty` and its error."""
    hosts = []
    for name, r in results.items():
        if isinstance(r, NixliftError):
            hosts.append({"name": name, **empty, "error": error_of(r)})
        else:
            hosts.append({"name": name, **fields(r), "error": None})
    return document(command, hosts=hosts)


def _generation(g: Generation) -> dict[str, Any]:
    return {**dataclasses.asdict(g), "created": rfc3339(g.created)}


def _record(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "time": normalize_time(r.get("time"))}


async def cmd_list_generations(inv: Invocation) -> int:
    network = await targets(inv)
    results, interrupted = await on_hosts(inv, network, lambda m, h: Agent(h).generations())
    if inv.output.json:
        print_json(
            hosts_json(
                "list-generations",
                results,
                lambda gens: {"generations": [_generation(g) for g in gens]},
                {"generations": []},
            )
        )
    else:
        for name, r in results.items():
            if isinstance(r, NixliftError):
                continue
            print(f"{name}:")
            for g in reversed(r):
                marks = ", ".join(
                    w for w, on in (("current", g.current), ("running", g.running)) if on
                )
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(g.created))
                print(f"  {g.number:>4}  {stamp}  {g.system}" + (f"  ({marks})" if marks else ""))
    return report_errors(results, interrupted)


async def cmd_history(inv: Invocation) -> int:
    network = await targets(inv)
    results, interrupted = await on_hosts(inv, network, lambda m, h: Agent(h).history())
    if inv.output.json:
        print_json(
            hosts_json(
                "history",
                results,
                lambda records: {"records": [_record(r) for r in records]},
                {"records": []},
            )
        )
    else:
        for name, r in results.items():
            if isinstance(r, NixliftError):
                continue
            print(f"{name}:")
            for e in r[-inv.last :] if inv.last else r:
                commit = f" @{str(e.get('commit'))[:12]}" if e.get("commit") else ""
                print(
                    f"  {e.get('time')}  {e.get('user')}@{e.get('from')}  {e.get('goal')}  "
                    f"{e.get('result')}  {e.get('system')}{commit}"
                )
    return report_errors(results, interrupted)


async def cmd_rollback(inv: Invocation) -> int:
    network = await targets(inv)
    show = PlainRenderer()
    results, interrupted = await on_hosts(
        inv,
        network,
        lambda m, h: roll_back(
            Agent(h),
            to=inv.to,
            deployment=network.deployment_name,
            lock_wait=inv.fleet.lock_wait,
            emit=show,
        ),
        interruptible=False,
    )
    for name, r in results.items():
        if not isinstance(r, NixliftError):
            print(f"[{name}] now runs {r.running or 'no system'}", file=sys.stderr)
    return report_errors(results, interrupted)


async def cmd_check(inv: Invocation) -> int:
    network = await targets(inv)
    which = "preDeployChecks" if inv.pre_deploy else "healthChecks"

    async def work(m: Machine, host: Host) -> list[health.CheckResult]:
        # (systemd's verdict is asked for only where the host runs systemd)
        return await health.run_checks(host, m, which, discard, systemd=not inv.pre_deploy)

    results, interrupted = await on_hosts(inv, network, work)
    rows = [r for found in results.values() if not isinstance(found, NixliftError) for r in found]
    if inv.output.json:
        print_json(
            hosts_json(
                "check",
                results,
                lambda found: {
                    "checks": [
                        {k: v for k, v in dataclasses.asdict(r).items() if k != "host"}
                        for r in found
                    ],
                    "ok": all(r.ok for r in found),
                },
                {"checks": [], "ok": False},
            )
        )
    else:
        for r in rows:
            print(
                f"{r.host}  {r.kind:7}  {'ok' if r.ok else 'FAILED':6}  {r.description}"
                f"  ({r.attempts} attempt{'s' if r.attempts != 1 else ''}, {r.seconds:g} s)"
                + (f"  {r.detail}" if r.detail else "")
            )
        checked = {r.host for r in rows}
        for name, found in results.items():
            if not isinstance(found, NixliftError) and name not in checked:
                print(f"{name}  (no checks)", file=sys.stderr)
    status = report_errors(results, interrupted)
    return status or (1 if any(not r.ok for r in rows) else 0)


async def cmd_upload_keys(inv: Invocation) -> int:
    network = await evaluate_request(
        await resolve(inv.network), machines="deployment", key_texts=True
    )
    base = network.files[0].resolve().parent if network.files else Path.cwd()
    declared = {m.name: keys.declared(m, base) for m in network.machines}
    show = PlainRenderer()

    async def work(m: Machine, host: Host) -> keys.Uploaded:
        agent = Agent(host)
        lock = HostLock(
            agent, holder_info(network.deployment_name), inv.fleet.lock_wait, want_keys=True
        )
        locked = await lock.acquire()
        try:
            uploaded = await keys.send_all(agent, m, declared[m.name], locked.keys)
        finally:
            await lock.release()
        show(Phase(m.name, Stage.KEYS, uploaded.describe()))
        return uploaded

    results, interrupted = await on_hosts(inv, network, work)
    if inv.output.json:
        print_json(
            hosts_json(
                "upload-keys",
                results,
                dataclasses.asdict,
                {"written": [], "unchanged": [], "removed": [], "owner_pending": []},
            )
        )
    return report_errors(results, interrupted)
