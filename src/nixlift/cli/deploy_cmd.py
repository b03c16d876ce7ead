"""`nixlift deploy`, `build` and `apply-local`: evaluate, check where it can be built, run the
pipeline, report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from nixlift.cli import cache_cmd
from nixlift.cli.access import reach
from nixlift.cli.options import Invocation
from nixlift.cli.output import document, print_json, result_json, rfc3339
from nixlift.cli.screen import interrupts, screen
from nixlift.cli.source import Request, evaluate_request, resolve, with_network_config
from nixlift.deploy import history, keys
from nixlift.deploy.buildhost import spec_for
from nixlift.deploy.cache import prepare as prepare_cache
from nixlift.deploy.early import EarlyConnections
from nixlift.deploy.fanout import Reach
from nixlift.deploy.options import DeployOptions, default_build_parallel
from nixlift.deploy.pipeline import Deployment
from nixlift.deploy.rollout import FailurePolicy
from nixlift.errors import UsageError
from nixlift.model import Goal, Network, Status
from nixlift.nix import platforms
from nixlift.nix.argv import NixSettings
from nixlift.nix.evaluate import Announce
from nixlift.selection import Selection


def uploads_keys(inv: Invocation) -> bool:
    return inv.upload_keys and inv.goal.activates and inv.goal is not Goal.DRY_ACTIVATE


@dataclass(frozen=True)
class Evaluated:
    """The evaluated network with the settings and commit the deploy goes on with."""

    network: Network
    settings: NixSettings
    #: the network's git commit, for the hosts' histories (when the goal activates)
    commit: str | None = None


async def evaluate_checked(
    inv: Invocation, req: Request | None = None, *, announce: Announce | None = None
) -> Evaluated:
    """Evaluate (and read the network's git commit meanwhile); refuse machines this machine
    cannot build before anything else happens. `announce`: see evaluate's."""
    req = req or await resolve(inv.network)
    commit = asyncio.ensure_future(
        history.network_commit(_checkout_files(req)) if inv.goal.activates else _none()
    )
    try:
        network = await evaluate_request(req, key_texts=uploads_keys(inv), announce=announce)
        settings = with_network_config(req.settings, network)
        # (machines built on a build host are checked against it, once it answers)
        here = replace(
            network,
            machines=tuple(m for m in network.machines if spec_for(m, inv.build_host) is None),
        )
        if here.machines and not platforms.all_native(here, settings):
            platforms.check(await platforms.probe(settings), here.machines)
    except BaseException:
        commit.cancel()
        raise
    return Evaluated(network, settings, await commit)


async def _none() -> None:
    return None


def _checkout_files(req: Request) -> tuple[Path, ...]:
    """The files whose git commit the hosts' histories name: the network files, or a local
    flake's flake.nix."""
    flake = req.source.flake
    local = flake.local_dir() if flake is not None else None
    return req.source.files or ((local / "flake.nix",) if local is not None else ())


def refuse_other_backends(network: Network) -> None:
    """NixOps' targetEnv other than "none" would create machines: nixlift deploys to existing
    ones only, and says so before anything starts."""
    for m in network.machines:
        if m.deployment.target_env != "none":
            raise UsageError(
                f"machine '{m.name}' has deployment.targetEnv = {m.deployment.target_env!r}: "
                "nixlift does not create machines",
                host=m.name,
                hint='deploy to the machine once it exists: deployment.targetEnv = "none" '
                "and its address in deployment.targetHost",
            )


def declared_keys(inv: Invocation, network: Network) -> dict[str, list[keys.Key]]:
    """Every machine's keys and secrets, checked before any host is touched."""
    base = network.files[0].resolve().parent if network.files else Path.cwd()
    found = {m.name: keys.declared(m, base) for m in network.machines}
    count = sum(len(k) for k in found.values())
    if count and not inv.upload_keys and inv.goal.activates:
        print(
            f"nixlift: --no-keys: {count} key{'s' if count != 1 else ''} and secrets declared "
            "by the selected machines are not uploaded",
            file=sys.stderr,
        )
    return found if uploads_keys(inv) else {}


def refuse_unanswerable_confirm(inv: Invocation) -> None:
    """--confirm asks on the terminal: where there is none, say so before any work."""
    if inv.confirm and not inv.yes and not sys.stdin.isatty():
        raise UsageError(
            "deploy --confirm asks before deploying, but standard input is not a terminal",
            hint="give --yes as well to show the plan and deploy without asking, or run "
            "`nixlift plan` first and deploy without --confirm",
        )


async def cmd_deploy(inv: Invocation) -> int:
    if inv.dry_run:
        # (imported here: plan_cmd builds on this module)
        from nixlift.cli.plan_cmd import cmd_plan

        return await cmd_plan(inv)
    refuse_unanswerable_confirm(inv)
    req = await resolve(inv.network)
    async with early_connections(inv) as early:
        announce = early.announced if early is not None else None
        evaluated = await evaluate_checked(inv, req, announce=announce)
        network = evaluated.network
        if not network.allow_apply_all and not req.selection.names_machines:
            raise UsageError(
                f"{network.source} sets meta.allowApplyAll = false: a deploy must name its "
                "machines",
                hint="select them with --on NAMES (or @TAG)",
            )
        return await run_deployment(inv, evaluated, reach(inv, network.machines), early=early)


@contextlib.asynccontextmanager
async def early_connections(inv: Invocation) -> AsyncIterator[EarlyConnections | None]:
    """Hosts' connections opened during the evaluation (deploy/early.py), for a deploy that
    copies to them at once: not with --confirm (its plan connects on its own, and the
    question may wait long) nor --ask-sudo-password (tried at login, asked after it)."""
    if not inv.goal.copies or inv.confirm or inv.ask_sudo_password:
        yield None
        return
    async with EarlyConnections(
        connect_timeout=inv.fleet.connect_timeout, compress=inv.fleet.compress
    ) as early:
        yield early


async def cmd_build(inv: Invocation) -> int:
    return await cmd_deploy(inv)


async def cmd_apply_local(inv: Invocation) -> int:
    """colmena's apply-local: deploy the machine named like this host (or --node) onto this
    machine itself, without SSH; the machine must allow it (deployment.allowLocalDeployment)."""
    node = inv.machine or socket.gethostname().split(".", 1)[0]
    req = await resolve(inv.network)
    req = replace(req, selection=Selection.from_args([node], []))
    evaluated = await evaluate_checked(inv, req)
    machine = evaluated.network.machines[0]
    if not machine.deployment.allow_local_deployment:
        raise UsageError(
            f"machine '{machine.name}' does not allow local deployment",
            hint="set deployment.allowLocalDeployment = true in its configuration",
        )
    local = reach(inv, evaluated.network.machines, local=frozenset({machine.name}))
    return await run_deployment(inv, evaluated, local)


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
    wanted = cache_cmd.config(inv, network) if goal.copies else None
    cache = await prepare_cache(wanted) if wanted is not None else None
    keep = inv.network.keep_result
    roots = (
        _gc_root_dir(network.deployment_name)
        if keep
        else Path(tempfile.mkdtemp(prefix="nixlift-roots-"))
    )
    fleet, safety = inv.fleet, inv.safety
    options = DeployOptions(
        goal=goal,
        settings=settings,
        gc_roots=roots,
        keep_roots=keep,
        force_activate=safety.always_activate,
        reach=how,
        parallel=fleet.parallel,
        policy=FailurePolicy.parse(fleet.fail_fast, fleet.max_failures),
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
        # (imported here: plan_cmd builds on this module)
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


def _gc_root_dir(deployment: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(state) / "nixlift" / "gcroots" / deployment
    path.mkdir(parents=True, exist_ok=True)
    return path
