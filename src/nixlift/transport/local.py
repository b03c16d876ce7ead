"""This machine as a deploy target (colmena's apply-local): commands run here, with sudo when
nixlift does not run as root, and the system is already in the store it was built in."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from nixlift import proc
from nixlift.errors import CommandError
from nixlift.events import Emit
from nixlift.nix.closure import NarSizes
from nixlift.transport.elevate import DEFAULT_COMMAND, Elevation, Password, elevation_error


class LocalHost:
    is_local = True

    def __init__(
        self,
        name: str,
        *,
        escalation: tuple[str, ...] = DEFAULT_COMMAND,
        password: Password | None = None,
    ) -> None:
        self.name = name
        user = "root" if os.geteuid() == 0 else "someone"
        self.elevation = Elevation.for_user(user, escalation, password)

    @property
    def destination(self) -> str:
        return "this machine"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self.elevation.password is None:
            return
        argv = self.elevation.wrap(["true"])
        done = await proc.run(
            argv, stdin=self.elevation.stdin_prefix(), check=False, host=self.name, timeout=30
        )
        if done.returncode != 0:
            raise elevation_error(self.name, self.elevation, done, "becoming root")

    async def close(self) -> None:
        return None

    async def reopen(self, connect_timeout: int) -> None:
        return None

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
        # Every local command ends with nixlift (its process group is stopped on cancellation),
        # so stop_with_connection needs nothing more; a fresh connection is this machine again.
        words = self.elevation.wrap(list(argv)) if elevated else list(argv)
        return await proc.run(
            words,
            what=f"{what} on {self.name}",
            stdin=stdin,
            keep_stdin_open=keep_stdin_open,
            timeout=timeout,
            check=check,
            error=error,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            host=self.name,
            feed=feed,
        )

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
        return None  # built into this machine's own store

    def nix_sshopts(self) -> None:
        return None

    def store_url(self, *, legacy: bool = False, remote_store: str | None = None) -> None:
        return None
