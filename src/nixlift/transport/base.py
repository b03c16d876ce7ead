"""The Host interface: everything nixlift does to a machine goes through one of these.

Two implementations: `SshHost` (OpenSSH with one ControlMaster connection per host) and
`LocalHost` (this machine: colmena's apply-local). Code above this layer never builds ssh argv.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

from nixlift import proc
from nixlift.errors import CommandError
from nixlift.events import Emit
from nixlift.nix.closure import NarSizes
from nixlift.transport.elevate import Elevation


class Host(Protocol):
    #: the machine's name in the network
    name: str
    #: how commands that need root run there
    elevation: Elevation

    @property
    def destination(self) -> str:
        """Where it is, for people: `root@pi.lan:2222`, `this machine`."""
        ...

    @property
    def is_local(self) -> bool: ...

    async def open(self) -> None:
        """Connect (and log in). Raises SshError with a diagnosis when that fails."""
        ...

    async def close(self) -> None: ...

    async def reopen(self, connect_timeout: int) -> None:
        """Drop the connection and open a new one (after a reboot)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        elevated: bool = False,
        stdin: bytes | None = None,
        keep_stdin_open: bool = False,
        stop_with_connection: bool = False,
        fresh_connection: bool = False,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        on_stdout: proc.LineSink | None = None,
        on_stderr: proc.LineSink | None = None,
        feed: asyncio.Queue[bytes | None] | None = None,
    ) -> proc.Completed:
        """Run argv on the host (as root with `elevated`). `stdin` is written to the command;
        with `keep_stdin_open` the pipe then stays open until the command ends (its end of file
        tells the host we are gone); `feed` writes more as it comes (None ends it).
        `stop_with_connection` stops the command when this side stops waiting (never for an
        activation). `fresh_connection` logs in anew instead of using the open connection:
        proof that the host still lets someone in."""
        ...

    async def copy_to(
        self,
        paths: Sequence[str],
        *,
        use_substitutes: bool,
        emit: Emit,
        legacy: bool = False,
        remote_store: str | None = None,
        sizes: NarSizes | None = None,
    ) -> int | None:
        """Copy the closures of store paths into the host's store (nothing for this machine):
        through its nix-daemon, or with `legacy` through nix-store --serve; `remote_store`
        names another store there (a daemon socket) to copy into; `sizes` is where the NAR
        sizes its progress counts bytes with come from (read for it alone without). Returns
        the NAR bytes of the paths it sent, or None when not known."""
        ...

    def nix_sshopts(self) -> str | None:
        """NIX_SSHOPTS for nix commands that reach this host themselves; None for this machine."""
        ...

    def store_url(self, *, legacy: bool = False, remote_store: str | None = None) -> str | None:
        """nix's URL of the host's store (`ssh-ng://…`); None for this machine's own store."""
        ...
