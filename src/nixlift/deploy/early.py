"""SSH connections opened while the network is still being evaluated.

The evaluation says each selected machine's deployment options before it evaluates any system
(nix/evaluate.py's `announce`); a deploy opens those machines' connections at once, so that the
handshakes (~8 round trips each: 0.4 s at 50 ms) go on alongside the rest of the evaluation,
which for a real NixOS system takes seconds. Only the connection is opened: nothing runs on a
host before the evaluation has ended well, and if it fails, the connections are closed unused.

The deploy's Fleet takes a connection over only if the machine it evaluated has the same
deployment options as the one announced, and no sudo password is given to it (that is asked
after the evaluation and tried at login); anything else is connected again as usual. A failed
early connection is reported where the deploy connects, as any other.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    # (imported where used: a deploy starts its evaluation before it imports asyncio, and
    # imports the transport while nix evaluates)
    import asyncio

    from nixlift.model import DeploymentOptions, Machine
    from nixlift.transport.base import Host
    from nixlift.transport.ssh import SshHost

log = logging.getLogger("nixlift.deploy")


class EarlyConnections:
    """The connections a deploy opened during its evaluation (see the module's text)."""

    def __init__(self, *, connect_timeout: int = 10, compress: bool = False) -> None:
        self.connect_timeout = connect_timeout
        self.compress = compress
        self._directory: Path | None = None
        self._entered = False
        #: by machine name: what was announced, its host, and the task opening it
        self._started: dict[str, tuple[DeploymentOptions, SshHost, asyncio.Task[float]]] = {}

    async def __aenter__(self) -> Self:
        self._entered = True
        return self

    @property
    def directory(self) -> Path:
        """The control sockets' directory, made when first needed. The deploy's Fleet puts its
        own sockets here too: one directory for a deploy, one left behind if it is killed."""
        assert self._entered, "used inside `async with`"
        if self._directory is None:
            from nixlift.transport.ssh import new_control_directory

            self._directory = new_control_directory()
        return self._directory

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for _, host, task in self._started.values():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await host.close()
        self._started.clear()
        self._entered = False
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    def prepare(self) -> None:
        """Import what connecting needs (the evaluation's `started`: while nix evaluates, so
        that a machine announced is connected to at once)."""
        import nixlift.transport.ssh  # noqa: F401

    def announced(self, name: str, deployment: DeploymentOptions) -> None:
        """Start connecting to a machine the evaluation just named (if it is reached over SSH
        without a sudo password asked first)."""
        if (
            not self._entered
            or name in self._started
            or deployment.target_host is None
            or deployment.interactive_sudo
        ):
            return
        import asyncio

        from nixlift.model import Machine
        from nixlift.transport.ssh import SshHost

        machine = Machine(name, "", "", deployment, "", "")
        host = SshHost.for_machine(
            machine,
            self.directory / f"e{len(self._started)}",  # (the Fleet's are 0, 1, …)
            connect_timeout=self.connect_timeout,
            compress=self.compress,
        )
        log.debug("%s: connecting while the network is evaluated", name)
        self._started[name] = (deployment, host, asyncio.ensure_future(open_timed(host)))

    def take(
        self, machine: Machine, *, password: bool, compress: bool, connect_timeout: int
    ) -> tuple[SshHost, asyncio.Task[float]] | None:
        """The machine's early connection (its host, and the task that opens it and says how
        long that took) if it is the one the deploy would open: same deployment options, same
        connect timeout and compression, and no sudo password to try at login where its user
        needs one. The Fleet closes it as its own; closing it again here at the end is harmless."""
        started = self._started.get(machine.name)
        if started is None:
            return None
        announced, host, opening = started
        if (
            announced != machine.deployment
            or compress != self.compress
            or connect_timeout != self.connect_timeout
            or (password and host.elevation.needed)
        ):
            log.debug("%s: the early connection is not the one needed: not used", machine.name)
            return None
        return host, opening


async def open_timed(host: Host) -> float:
    """Open the host's connection; how long it took (its handshake), in seconds."""
    start = time.monotonic()
    await host.open()
    return time.monotonic() - start
