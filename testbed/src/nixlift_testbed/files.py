"""Writing the sandbox's files: atomically, and only when their contents or mode change."""

from __future__ import annotations

import os
from pathlib import Path


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    try:
        if path.read_text(encoding="utf-8") == text and (path.stat().st_mode & 0o7777) == mode:
            return
    except OSError:
        pass
    _write_atomic(path, text, mode)


def _host_etc_text(upper: Path, lower: Path) -> str:
    """A file of a host's /etc as the host sees it: its own (the overlay's upper layer) if it has
    one, else the real one (the lower layer); "" if neither exists."""
    source = upper if upper.is_file() and not upper.is_symlink() else lower
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
