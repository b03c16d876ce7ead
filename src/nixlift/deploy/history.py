"""The deploy history kept on each host (/nix/var/nixlift/history.jsonl): who put what there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nixlift import proc
from nixlift.errors import CommandError


async def network_commit(files: tuple[Path, ...]) -> str | None:
    """The git commit of the network's checkout (`+dirty` if its files have changes)."""
    if not files:
        return None
    directory = files[0].resolve().parent
    try:
        head = await proc.run(["git", "-C", str(directory), "rev-parse", "HEAD"], timeout=10)
        status = await proc.run(
            [
                "git",
                "-C",
                str(directory),
                "status",
                "--porcelain",
                "--",
                *(str(f.resolve()) for f in files),
            ],
            timeout=10,
        )
    except (CommandError, OSError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if status.stdout.strip() else "")


def entry(
    *,
    deployment: str,
    commit: str | None,
    system: str | None,
    goal: str,
    result: str,
    error: str | None,
) -> dict[str, Any]:
    import getpass
    import socket  # (here: the evaluation a deploy begins with is started before these)

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": getpass.getuser(),
        "from": socket.gethostname(),
        "deployment": deployment,
        "commit": commit,
        "system": system,
        "goal": goal,
        "result": result,
        "error": error,
    }
