"""Becoming root on a host: the one place that knows sudo, doas, run0 and custom commands.

A host reached as root needs nothing. Otherwise `deployment.privilegeEscalationCommand` (default
`sudo -H --`) prefixes every command that needs root. sudo is told never to prompt (`-n`): a sudo
that wants a password fails at once with a hint, instead of hanging on a prompt nobody sees. With
a password (`--ask-sudo-password`), sudo reads it from the command's stdin (`-S`, no prompt
text); the password never appears in argv, the environment or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from nixlift.errors import ElevationError
from nixlift.proc import Completed

DEFAULT_COMMAND = ("sudo", "-H", "--")


@dataclass(frozen=True)
class Password:
    """A secret held in memory only; its repr never shows it."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if "\n" in self.value or "\r" in self.value:
            raise ValueError("a password cannot contain a line break")


@dataclass(frozen=True)
class Elevation:
    """How commands that need root are run on one host."""

    #: the escalation command's words; empty when the SSH user is root already
    command: tuple[str, ...] = ()
    password: Password | None = field(default=None, compare=False)

    @classmethod
    def for_user(
        cls,
        user: str | None,
        command: tuple[str, ...] = DEFAULT_COMMAND,
        password: Password | None = None,
    ) -> Elevation:
        if user in (None, "root") or not command:
            return cls()
        return cls(tuple(command), password)

    @property
    def needed(self) -> bool:
        return bool(self.command)

    @property
    def program(self) -> str:
        return PurePath(self.command[0]).name if self.command else ""

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run as root."""
        if not self.command:
            return list(argv)
        if self.program == "sudo":
            flags = ["-S", "-p", ""] if self.password is not None else ["-n"]
            return [self.command[0], *flags, *self.command[1:], *argv]
        if self.program in ("doas", "run0") and self.password is None:
            # neither may prompt on a terminal we do not have
            flag = "-n" if self.program == "doas" else "--no-ask-password"
            return [self.command[0], flag, *self.command[1:], *argv]
        return [*self.command, *argv]

    def stdin_prefix(self) -> bytes:
        """What goes first on the stdin of an elevated command: the password line for sudo -S.
        (When sudo does not need it, the command reads it: see the agent's bootstrap.)"""
        if self.password is None or not self.command:
            return b""
        return self.password.value.encode() + b"\n"

    def describe(self) -> str:
        return " ".join(self.command) if self.command else "none (root)"


def reads_password(command: tuple[str, ...]) -> bool:
    """Whether a password can be given to this escalation command on stdin."""
    return bool(command) and PurePath(command[0]).name == "sudo"


def refusal(stderr: str) -> str | None:
    """Why the escalation command refused, from its own words (None: it did not)."""
    if "a password is required" in stderr or "a terminal is required" in stderr:
        return "wants a password"
    if "incorrect password" in stderr or "Sorry, try again" in stderr:
        return "did not accept the password"
    if "is not in the sudoers file" in stderr or "not allowed to execute" in stderr:
        return "does not let the user run commands as root"
    return None


def elevation_error(host: str, elevation: Elevation, done: Completed, what: str) -> ElevationError:
    """The error for a command that could not become root, with what to do about it."""
    why = refusal(done.stderr) or "failed"
    program = elevation.program or "the escalation command"
    if why == "wants a password":
        hint = (
            "give it with --ask-sudo-password (one prompt for every host), or allow the "
            "SSH user sudo without a password (NOPASSWD) on the host"
        )
    elif why == "did not accept the password":
        hint = "nothing was changed on it; run again and give the right password"
    else:
        hint = "let the SSH user run commands as root there, or deploy as root"
    return ElevationError(
        f"{what} on {host} needs root, and {program} {why}",
        argv=done.argv,
        returncode=done.returncode,
        stderr_tail=done.stderr_tail(),
        host=host,
        hint=hint,
    )
