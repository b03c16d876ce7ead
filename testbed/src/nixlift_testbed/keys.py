"""SSH keys of a sandbox: the client key, host keys, and the hosts' authorized_keys."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from nixlift import proc
from nixlift.errors import CommandError
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.files import _write_atomic


async def _run(argv: Sequence[str], what: str) -> proc.Completed:
    try:
        return await proc.run(argv, timeout=60, what=what)
    except CommandError as e:
        detail = f":\n{e.stderr_tail}" if e.stderr_tail else ""
        raise SandboxError(f"{e.message}{detail}", hint=e.hint) from e


async def _ensure_key(key: Path, comment: str) -> str:
    """Public key line of the ed25519 key pair `key`, `key.pub`; generated if missing."""
    if not _key_pair_present(key):
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
        await _run(argv, f"ssh-keygen for {key}")
    return _public_key(key)


def _public_key_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def _key_pair_present(key: Path) -> bool:
    """Whether `key` and `key.pub` exist; if only one does, remove it (ssh-keygen would ask)."""
    pub = _public_key_path(key)
    if key.is_file() and pub.is_file():
        return True
    for path in (key, pub):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return False


def _public_key(key: Path) -> str:
    return _public_key_path(key).read_text(encoding="utf-8").strip()


def _public_key_or_empty(key: Path) -> str:
    try:
        return _public_key(key)
    except OSError:
        return ""


def authorized_keys_line(client_key: str) -> str:
    """The line authorizing the client key `TYPE KEY [COMMENT]` (as `TYPE KEY nixlift-sandbox`)."""
    fields = client_key.split()
    if len(fields) < 2:
        raise SandboxError(f"not an OpenSSH public key: {client_key!r}")
    return f"{fields[0]} {fields[1]} nixlift-sandbox\n"


def _authorizes(root: Path, client_key: str) -> bool:
    """Whether the host in `root` has the client key in its /etc/ssh/authorized_keys.d/root."""
    wanted = client_key.split()[:2]
    try:
        text = (root / "etc-upper" / "ssh" / "authorized_keys.d" / "root").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.split()[:2] == wanted for line in text.splitlines())


def _install_authorized_keys(etc: Path, client_key: str, users: Sequence[str] = ("root",)) -> None:
    """`etc/ssh/authorized_keys.d/USER` with the client key for each of `users`, unless the
    file exists already (the deployed system manages them from then on).

    The directory is made opaque in the overlay, so that keys of the real /etc never show
    through into a host. Only while the host is stopped (it is a file of the upper layer).
    """
    keys_dir = etc / "ssh" / "authorized_keys.d"
    if not keys_dir.is_dir():
        keys_dir.mkdir(mode=0o755, parents=True)
        with contextlib.suppress(OSError):
            os.setxattr(keys_dir, "trusted.overlay.opaque", b"y")
    for user in users:
        keys = keys_dir / user
        if not os.path.lexists(keys):  # (a whiteout, the file removed inside, counts too)
            _write_atomic(keys, authorized_keys_line(client_key), 0o444)
