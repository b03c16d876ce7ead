"""Copying closures to a host: through its nix-daemon (ssh-ng, batched), through nix-store
--serve where it has no daemon program, and through a store the agent serves as root where the
SSH user's sudo wants a password (which nix's own ssh cannot give)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from nixlift.agent.protocol import Agent
from nixlift.events import Emit

log = logging.getLogger("nixlift.copy")


@contextlib.asynccontextmanager
async def served_store(agent: Agent) -> AsyncIterator[str | None]:
    """Where nix reaches the host's store as root: None for its usual way (the SSH user is
    root, or sudo needs no password), else the socket of a daemon the agent serves."""
    if agent.host.elevation.password is None:
        yield None
    else:
        async with agent.store_bridge() as socket:
            yield f"unix://{socket}"


async def copy(
    agent: Agent, paths: Sequence[str], *, use_substitutes: bool, emit: Emit, daemon: bool = True
) -> None:
    host = agent.host
    if host.is_local:
        return
    if not daemon:
        log.debug(
            "%s has no nix-daemon program: copying through nix-store --serve (a round "
            "trip per path)",
            host.name,
        )
        await host.copy_to(paths, use_substitutes=use_substitutes, emit=emit, legacy=True)
        return
    async with served_store(agent) as store:
        await host.copy_to(paths, use_substitutes=use_substitutes, emit=emit, remote_store=store)
