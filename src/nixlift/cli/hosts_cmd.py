"""Commands that read or act on what the hosts themselves hold: their generations and their
deploy history. They need the network only to know how to reach the hosts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nixlift.cli.source import resolve
from nixlift.deploy import generations, health, history
from nixlift.deploy.lock import HostLock, holder_info
from nixlift.errors import NixliftError
from nixlift.events import discard
from nixlift.model import Machine, Network
from nixlift.nix.evaluate import evaluate
from nixlift.transport.ssh import SshSession, SshTarget, control_directory

T = TypeVar("T")


async def _targets(args: argparse.Namespace) -> Network:
    req = resolve(args)
    return await evaluate(req.source, req.selection, req.settings, machines="deployment")


async def on_each(network: Network, args: argparse.Namespace,
                   work: Callable[[Machine, SshSession], Awaitable[T]]
                   ) -> dict[str, T | NixliftError]:
    """Run `work` on every selected host at once; a host's error is its own."""

    async def one(i: int, m: Machine, control: Path) -> T | NixliftError:
        try:
            target = SshTarget.for_machine(m, args.connect_timeout)
            async with SshSession(target, control / str(i)) as session:
                return await work(m, session)
        except NixliftError as e:
            return e

    async with control_directory() as control:
        results = await asyncio.gather(*(one(i, m, control)
                                         for i, m in enumerate(network.machines)))
    return {m.name: r for m, r in zip(network.machines, results, strict=True)}


def _report_errors(results: dict[str, Any]) -> int:
    failed = 0
    for name, r in results.items():
        if isinstance(r, NixliftError):
            failed += 1
            print(f"[{name}] error: {r}" + (f"\n  hint: {r.hint}" if r.hint else ""),
                  file=sys.stderr)
    return 1 if failed else 0


async def cmd_list_generations(args: argparse.Namespace) -> int:
    network = await _targets(args)
    results = await on_each(network, args, lambda m, s: generations.list_generations(s))
    if args.json:
        json.dump({name: [g.__dict__ for g in r] for name, r in results.items()
                   if not isinstance(r, NixliftError)}, sys.stdout, indent=2)
        print()
    else:
        for name, r in results.items():
            if isinstance(r, NixliftError):
                continue
            print(f"{name}:")
            for g in reversed(r):
                marks = ", ".join(w for w, on in (("current", g.current),
                                                  ("running", g.running)) if on)
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(g.created))
                print(f"  {g.number:>4}  {stamp}  {g.system}" + (f"  ({marks})" if marks else ""))
    return _report_errors(results)


async def cmd_history(args: argparse.Namespace) -> int:
    network = await _targets(args)
    results = await on_each(network, args, lambda m, s: history.read(s))
    if args.json:
        json.dump({name: r for name, r in results.items() if not isinstance(r, NixliftError)},
                  sys.stdout, indent=2)
        print()
    else:
        for name, r in results.items():
            if isinstance(r, NixliftError):
                continue
            print(f"{name}:")
            for e in r[-args.last:] if args.last else r:
                commit = f" @{str(e.get('commit'))[:12]}" if e.get("commit") else ""
                print(f"  {e.get('time')}  {e.get('user')}@{e.get('from')}  {e.get('goal')}  "
                      f"{e.get('result')}  {e.get('system')}{commit}")
    return _report_errors(results)


async def cmd_rollback(args: argparse.Namespace) -> int:
    network = await _targets(args)

    async def work(m: Machine, session: SshSession) -> str:
        lock = HostLock(session, holder_info(network.deployment_name), args.lock_wait)
        await lock.acquire()
        try:
            gens = await generations.list_generations(session)
            target = generations.choose(gens, args.to, m.name)
            print(f"[{m.name}] rolling back to generation {target.number} ({target.system})",
                  file=sys.stderr)
            result = "ok"
            try:
                await generations.switch_to(session, target)
            except NixliftError:
                result = "failed"
                raise
            finally:
                await history.append(session, history.entry(
                    deployment=network.deployment_name, commit=None, system=target.system,
                    goal=f"rollback to {target.number}", result=result, error=None))
            return target.system
        finally:
            await lock.release()

    results = await on_each(network, args, work)
    for name, r in results.items():
        if not isinstance(r, NixliftError):
            print(f"[{name}] now runs {r}", file=sys.stderr)
    return _report_errors(results)


async def cmd_check(args: argparse.Namespace) -> int:
    network = await _targets(args)
    which = "preDeployChecks" if args.pre_deploy else "healthChecks"

    async def work(m: Machine, session: SshSession) -> list[health.CheckResult]:
        return await health.run_checks(session, m, which, discard, systemd=not args.pre_deploy)

    results = await on_each(network, args, work)
    rows = [r for found in results.values() if not isinstance(found, NixliftError)
            for r in found]
    if args.json:
        json.dump([r.__dict__ for r in rows], sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            print(f"{r.host}  {r.kind:7}  {'ok' if r.ok else 'FAILED':6}  {r.description}"
                  f"  ({r.attempts} attempt{'s' if r.attempts != 1 else ''}, {r.seconds:g} s)"
                  + (f"  {r.detail}" if r.detail else ""))
        checked = {r.host for r in rows}
        for name, found in results.items():
            if not isinstance(found, NixliftError) and name not in checked:
                print(f"{name}  (no checks)", file=sys.stderr)
    failed = any(not r.ok for r in rows)
    return 1 if failed or _report_errors(results) else 0
