"""A deploy once its network is evaluated: its keys and cache checked, the pipeline run, the
results reported. (A module of its own, imported after the evaluation has started the hosts'
connections: its imports then go while their handshakes are under way.)"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift.cli.evaluated import Evaluated
from nixlift.cli.options import Invocation
from nixlift.cli.output import document, print_json, result_json, rfc3339
from nixlift.cli.preflight import declared_keys, refuse_other_backends
from nixlift.cli.screen import interrupts, screen
from nixlift.deploy.early import EarlyConnections
from nixlift.deploy.fanout import Reach
from nixlift.deploy.options import DeployOptions, default_build_parallel
from nixlift.deploy.pipeline import Deployment
from nixlift.deploy.rollout import FailurePolicy
from nixlift.model import Goal, Network, Status

if TYPE_CHECKING:
    from nixlift.deploy.cache import Cache


async def run_deployment(
    inv: Invocation,
    evaluated: Evaluated,
    how: Reach,
    *,
    early: EarlyConnections | None = None,
) -> int:
    network, settings = evaluated.network, evaluated.settings
    goal = inv.goal
    refuse_other_backends(network)
    keys_of = declared_keys(inv, network)
    cache = await fleet_cache(inv, network) if goal.copies else None
    keep = inv.network.keep_result
    fleet, safety = inv.fleet, inv.safety
    # (before the GC roots' directory is made: a wrong value must not leave one behind)
    policy = FailurePolicy.parse(fleet.fail_fast, fleet.max_failures)
    roots = (
        _gc_root_dir(network.deployment_name)
        if keep
        else Path(tempfile.mkdtemp(prefix="nixlift-roots-"))
    )
    options = DeployOptions(
        goal=goal,
        settings=settings,
        gc_roots=roots,
        keep_roots=keep,
        force_activate=safety.always_activate,
        reach=how,
        parallel=fleet.parallel,
        policy=policy,
        skip_unreachable=fleet.skip_unreachable,
        lock_wait=fleet.lock_wait,
        auto_rollback=safety.auto_rollback,
        magic_rollback=safety.magic_rollback,
        health_checks=safety.health_checks,
        reboot=safety.reboot,
        allow_reboot=safety.allow_reboot,
        reboot_timeout=safety.reboot_timeout,
        commit=evaluated.commit,
        build_parallel=fleet.build_parallel or default_build_parallel(),
        upload_keys=inv.upload_keys,
        cache=cache,
        build_host=inv.build_host,
    )
    if inv.confirm:
        # (imported here: only --confirm plans before it deploys)
        from nixlift.cli.plan_cmd import confirmed

        try:
            answer = await confirmed(inv, evaluated, how, roots)
        except BaseException:
            if not keep:
                shutil.rmtree(roots, ignore_errors=True)
            raise
        if answer is not None:
            if not keep:
                shutil.rmtree(roots, ignore_errors=True)
            return answer
    label = network.description or network.deployment_name
    count = len(network.machines)
    if not inv.output.quiet:
        plural = "s" if count != 1 else ""
        print(f"{goal.value}: {label} ({count} machine{plural})", file=sys.stderr)
    started_at = rfc3339()
    with screen(inv.output) as shown:
        deployment = Deployment(network, options, shown.emit, keys=keys_of, early=early)
        try:
            with interrupts(deployment.interrupt):
                results = await deployment.run()
        finally:
            if not keep:
                shutil.rmtree(roots, ignore_errors=True)
    shown.summary(results)
    if inv.output.json:
        print_json(
            document(
                inv.command,
                deployment=network.deployment_name,
                source=network.source,
                output=network.output,
                goal=goal.value,
                started_at=started_at,
                finished_at=rfc3339(),
                hosts=[result_json(r) for r in results],
            )
        )
    elif goal is Goal.BUILD:
        for r in results:
            if r.succeeded and r.system:
                print(r.system)
    if deployment.interrupted:
        return 130
    return 0 if all(r.succeeded or r.status is Status.SKIPPED for r in results) else 1


async def fleet_cache(inv: Invocation, network: Network) -> Cache | None:
    """The fleet's binary cache (--cache, network.cache) made ready to push to; None without
    one, and then its modules are not imported (~5 ms of every deploy here)."""
    given = inv.cache
    if network.cache is None and not (given.store or given.key_file or given.url):
        return None
    from nixlift.cli import cache_cmd
    from nixlift.deploy.cache import prepare

    wanted = cache_cmd.config(inv, network)
    return await prepare(wanted) if wanted is not None else None


def _gc_root_dir(deployment: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(state) / "nixlift" / "gcroots" / deployment
    path.mkdir(parents=True, exist_ok=True)
    return path
