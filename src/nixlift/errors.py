"""Typed errors. Every error a user can meet says what failed and, in `hint`, what to do."""

from __future__ import annotations

import re
from collections.abc import Sequence

#: (pattern, hint) pairs: the hint of the first pattern a failure's text matches
Hints = Sequence[tuple[re.Pattern[str], str]]


def first_hint(hints: Hints, text: str) -> str | None:
    """The hint of the first pattern in `hints` that `text` matches (None: none does)."""
    return next((hint for pattern, hint in hints if pattern.search(text)), None)


def nix_error_text(stderr: str) -> str:
    """The part of nix's stderr a person needs: from the first `error:` on."""
    start = stderr.find("error:")
    return (stderr[start:] if start >= 0 else stderr).strip()


class NixliftError(Exception):
    """Base of every error nixlift reports to a person; never shown with a traceback."""

    #: what kind of failure this is, for machines (`--json`: error.kind)
    kind = "error"

    #: exit status of the CLI when this error ends a command
    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", host: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.host = host

    def __str__(self) -> str:
        return self.message


class UsageError(NixliftError):
    """Bad command line, unknown machine, unknown deployment name."""

    kind = "usage"

    exit_code = 2


class MissingProgramError(NixliftError):
    """A program nixlift needs (nix, ssh, sshd, …) is not on PATH."""

    kind = "missing-program"

    exit_code = 2


class EvalError(NixliftError):
    """The network file could not be evaluated (syntax, missing file, bad option)."""

    kind = "evaluation"

    exit_code = 2


class PlatformError(NixliftError):
    """A machine's system cannot be built on this machine."""

    kind = "platform"

    exit_code = 2


class CommandError(NixliftError):
    """A process exited with a failure status."""

    kind = "command"

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | tuple[str, ...] = (),
        returncode: int | None = None,
        stderr_tail: str = "",
        hint: str = "",
        host: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, host=host)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class BuildError(CommandError):
    """nix-build failed for a machine."""

    kind = "build"


class SshError(CommandError):
    """A host could not be reached or logged into over SSH."""

    kind = "ssh"


class CopyError(CommandError):
    """Copying a closure to a host failed."""

    kind = "copy"


class ActivationError(CommandError):
    """Setting the profile or switch-to-configuration failed on a host."""

    kind = "activation"


class ElevationError(CommandError):
    """A command could not become root on a host (sudo wants a password, or refused it)."""

    kind = "elevation"


class RegistryError(NixliftError):
    """The `-d NAME` registry is unreadable or does not hold the name."""

    kind = "registry"

    exit_code = 2
