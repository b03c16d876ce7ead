"""Copying closures to a host: through its nix-daemon (ssh-ng, batched), through nix-store
--serve where it has no daemon program, and through a store the agent serves as root where the
SSH user's sudo wants a password (which nix's own ssh cannot give)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nixlift.agent.protocol import Agent
from nixlift.events import Emit

log = logging.getLogger("nixlift.copy")


async def copy(agent: Agent, paths: Sequence[str], *, use_substitutes: bool, emit: Emit,
               daemon: bool = True) -> None:
    host = agent.host
    if host.is_local:
        return
    if not daemon:
        log.debug("%s has no nix-daemon program: copying through nix-store --serve (a round "
                  "trip per path)", host.name)
    if host.elevation.password is None or not daemon:
        await host.copy_to(paths, use_substitutes=use_substitutes, emit=emit, legacy=not daemon)
        return
    async with agent.store_bridge() as socket:
        await host.copy_to(paths, use_substitutes=use_substitutes, emit=emit,
                           remote_store=f"unix://{socket}")
