"""The evaluation a deploy, a build, a plan and apply-local begin with: the network evaluated,
its machines checked buildable here, the network's git commit read meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from nixlift.cli.options import Invocation
from nixlift.cli.source import (
    Request,
    evaluate_request,
    resolve,
    resolve_named,
    with_network_config,
)
from nixlift.deploy import history
from nixlift.deploy.buildspec import spec_for
from nixlift.errors import NixliftError
from nixlift.goal import Goal
from nixlift.nix import evaluate, platforms
from nixlift.nix.argv import NixSettings
from nixlift.nix.evaluate import Announce

if TYPE_CHECKING:
    from nixlift.model import Network


def uploads_keys(inv: Invocation) -> bool:
    return inv.upload_keys and inv.goal.activates and inv.goal is not Goal.DRY_ACTIVATE


@dataclass(frozen=True)
class Evaluated:
    """The evaluated network with the settings and commit the deploy goes on with."""

    network: Network
    settings: NixSettings
    #: the network's git commit, for the hosts' histories (when the goal activates)
    commit: str | None = None


def start_early(inv: Invocation, *, announce: bool) -> None:
    """Start the evaluation evaluate_checked(inv, announce=…) will run now, before the event
    loop runs and the command's other modules are imported (nix/evaluate.py's start_early):
    for a network named by files, ~0.1 s earlier than it could otherwise start."""
    try:
        req = resolve_named(inv.network)
    except NixliftError:
        return  # (said when the command resolves it)
    if req is not None:
        evaluate.start_early(
            req.source,
            req.selection,
            req.settings,
            key_texts=uploads_keys(inv),
            announce=announce,
        )


async def evaluate_checked(
    inv: Invocation,
    req: Request | None = None,
    *,
    announce: Announce | None = None,
    started: Callable[[], None] | None = None,
) -> Evaluated:
    """Evaluate (and read the network's git commit meanwhile); refuse machines this machine
    cannot build before anything else happens. `announce`, `started`: see evaluate's."""
    import asyncio  # (not at the top: see start_early)

    req = req or await resolve(inv.network)
    commit = asyncio.ensure_future(
        history.network_commit(_checkout_files(req)) if inv.goal.activates else _none()
    )
    try:
        network = await evaluate_request(
            req, key_texts=uploads_keys(inv), announce=announce, started=started
        )
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
