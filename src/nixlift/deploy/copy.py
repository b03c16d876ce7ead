"""Copying closures to a host: through its nix-daemon (ssh-ng, batched), through nix-store
--serve where it has no daemon program, and through a store the agent serves as root where the
SSH user's sudo wants a password (which nix's own ssh cannot give)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from nixlift.agent.protocol import Agent
from nixlift.errors import CopyError, SshError
from nixlift.events import Emit, Notice
from nixlift.nix.closure import NarSizes

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


#: tries of a copy whose connection was cut (a Wi-Fi drop, a reset), and the waits between them
TRIES = 3
BACKOFF = (1.0, 3.0)

#: what nix and ssh say when the connection went away under a copy
_CUT = re.compile(
    r"Connection reset|Broken pipe|Connection closed|connection closed|unexpected end-of-file"
    r"|Connection timed out|Network is unreachable|No route to host|end of file|"
    r"Timeout, server .* not responding|client_loop: send disconnect"
)


def was_cut(error: CopyError) -> bool:
    return bool(_CUT.search(f"{error.message}\n{error.stderr_tail}"))


@dataclass(frozen=True)
class Copied:
    """How a copy went: its tries, and the NAR bytes of the paths its last try sent (None when
    not known). A try that was cut is not counted: nix ends the activity of the path it was
    cut in as if that path were sent, and which paths had landed is not known."""

    tries: int
    bytes_sent: int | None = None


async def copy(
    agent: Agent,
    paths: Sequence[str],
    *,
    use_substitutes: bool,
    emit: Emit,
    daemon: bool = True,
    connect_timeout: int = 10,
    sizes: NarSizes | None = None,
    tried: CopyError | None = None,
) -> Copied:
    """Copy; a copy whose connection was cut is tried again over a new connection (what
    arrived stays: nix registers each path as it lands). `sizes`: see Host.copy_to. `tried`:
    how a try made before failed (the copy started alongside the lock's call): it counts as
    the first, and it is tried again whatever stopped it (it assumed a daemon program)."""
    host = agent.host
    if host.is_local:
        return Copied(0)
    first = 1
    if tried is not None:
        first = 2
        await _again(agent, tried, 1, emit, connect_timeout)
    for attempt in range(first, TRIES + 1):
        try:
            sent = await copy_once(
                agent,
                paths,
                use_substitutes=use_substitutes,
                emit=emit,
                daemon=daemon,
                sizes=sizes,
            )
            return Copied(attempt, sent)
        except CopyError as e:
            if attempt == TRIES or not was_cut(e):
                if attempt > 1:
                    e.message += f" (after {attempt} tries)"
                raise
            await _again(agent, e, attempt, emit, connect_timeout)
    raise AssertionError("unreachable")  # pragma: no cover


async def _again(
    agent: Agent, error: CopyError, attempt: int, emit: Emit, connect_timeout: int
) -> None:
    """Before the next try: a cut connection is said, waited on and opened anew."""
    if not was_cut(error):
        log.debug("%s: the copy failed (%s); trying again", agent.host.name, error)
        return
    emit(
        Notice(
            agent.host.name,
            f"the copy's connection was cut; trying again over a new "
            f"connection ({attempt + 1} of {TRIES})",
        )
    )
    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF)) - 1])
    with contextlib.suppress(SshError):
        await agent.host.reopen(connect_timeout)


async def copy_once(
    agent: Agent,
    paths: Sequence[str],
    *,
    use_substitutes: bool,
    emit: Emit,
    daemon: bool,
    sizes: NarSizes | None = None,
) -> int | None:
    """One try of the copy; the NAR bytes it sent, or None when not known."""
    host = agent.host
    if not daemon:
        log.debug(
            "%s has no nix-daemon program: copying through nix-store --serve (a round "
            "trip per path)",
            host.name,
        )
        return await host.copy_to(
            paths, use_substitutes=use_substitutes, emit=emit, legacy=True, sizes=sizes
        )
    async with served_store(agent) as store:
        return await host.copy_to(
            paths, use_substitutes=use_substitutes, emit=emit, remote_store=store, sizes=sizes
        )
