"""`nixlift deploy`, `build` and `apply-local`: evaluate (opening the hosts' connections
meanwhile), then run the deploy (cli/deploying.py)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from nixlift.cli.evaluated import evaluate_checked, start_early
from nixlift.cli.options import Invocation
from nixlift.cli.source import resolve
from nixlift.deploy.early import EarlyConnections
from nixlift.errors import UsageError
from nixlift.nix.evaluate import Announce
from nixlift.selection import Selection

if TYPE_CHECKING:
    from nixlift.model import DeploymentOptions


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
        from nixlift.cli.plan_cmd import cmd_plan

        return await cmd_plan(inv)
    refuse_unanswerable_confirm(inv)
    req = await resolve(inv.network)
    async with early_connections(inv) as early:
        if early is None:
            evaluated = await evaluate_checked(inv, req, started=import_the_rest)
        else:
            evaluated = await evaluate_checked(
                inv, req, announce=connect_first(early), started=early.prepare
            )
        network = evaluated.network
        if not network.allow_apply_all and not req.selection.names_machines:
            raise UsageError(
                f"{network.source} sets meta.allowApplyAll = false: a deploy must name its "
                "machines",
                hint="select them with --on NAMES (or @TAG)",
            )
        from nixlift.cli.access import reach
        from nixlift.cli.deploying import run_deployment

        return await run_deployment(inv, evaluated, reach(inv, network.machines), early=early)


def import_the_rest() -> None:
    """Import what a deploy needs once its network is evaluated (cli/deploying.py and what it
    imports: ~70 ms here), while nix evaluates it on the machine's other core. This module
    imports only what starting the evaluation needs."""
    import nixlift.cli.access
    import nixlift.cli.deploying  # noqa: F401


def connect_first(early: EarlyConnections) -> Announce:
    """The evaluation's `announce` for a deploy with early connections: each machine announced
    is connected to, and then the rest is imported (import_the_rest), once the connections'
    ssh processes are started (their tasks' first steps come before it in the event loop's
    queue). So their handshakes go on meanwhile, and the imports, when the evaluation names its
    machines early (a real NixOS system's evaluation takes seconds), alongside it too."""
    import asyncio

    loop = asyncio.get_running_loop()

    def announce(name: str, deployment: DeploymentOptions) -> None:
        early.announced(name, deployment)
        loop.call_soon(import_the_rest)

    return announce


@contextlib.asynccontextmanager
async def early_connections(inv: Invocation) -> AsyncIterator[EarlyConnections | None]:
    """Hosts' connections opened during the evaluation (deploy/early.py), for a deploy that
    copies to them at once: not with --confirm (its plan connects on its own, and the
    question may wait long) nor --ask-sudo-password (tried at login, asked after it)."""
    if not connects_early(inv):
        yield None
        return
    async with EarlyConnections(
        connect_timeout=inv.fleet.connect_timeout, compress=inv.fleet.compress
    ) as early:
        yield early


def connects_early(inv: Invocation) -> bool:
    return inv.goal.copies and not inv.confirm and not inv.ask_sudo_password


def start_evaluation(inv: Invocation) -> None:
    """Before the event loop (cli/main.py): start the evaluation cmd_deploy will run. This
    module imports no asyncio, so that this comes first."""
    if not inv.dry_run:
        start_early(inv, announce=connects_early(inv))


async def cmd_build(inv: Invocation) -> int:
    return await cmd_deploy(inv)


async def cmd_apply_local(inv: Invocation) -> int:
    """colmena's apply-local: deploy the machine named like this host (or --node) onto this
    machine itself, without SSH; the machine must allow it (deployment.allowLocalDeployment)."""
    import socket

    node = inv.machine or socket.gethostname().split(".", 1)[0]
    req = await resolve(inv.network)
    req = replace(req, selection=Selection.from_args([node], []))
    evaluated = await evaluate_checked(inv, req, started=import_the_rest)
    machine = evaluated.network.machines[0]
    if not machine.deployment.allow_local_deployment:
        raise UsageError(
            f"machine '{machine.name}' does not allow local deployment",
            hint="set deployment.allowLocalDeployment = true in its configuration",
        )
    from nixlift.cli.access import reach
    from nixlift.cli.deploying import run_deployment

    local = reach(inv, evaluated.network.machines, local=frozenset({machine.name}))

    return await run_deployment(inv, evaluated, local)
