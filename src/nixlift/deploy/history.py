"""A deploy history kept on each host (/nix/var/nixlift/history.jsonl): who put what there."""

from __future__ import annotations

import getpass
import json
import socket
import time
from pathlib import Path
from typing import Any

from nixlift import proc
from nixlift.deploy import hostside
from nixlift.errors import CommandError
from nixlift.transport.ssh import SshSession


async def network_commit(files: tuple[Path, ...]) -> str | None:
    """The git commit of the network's checkout (`+dirty` if its files have changes)."""
    if not files:
        return None
    directory = files[0].resolve().parent
    try:
        head = await proc.run(["git", "-C", str(directory), "rev-parse", "HEAD"], timeout=10)
        status = await proc.run(["git", "-C", str(directory), "status", "--porcelain", "--",
                                 *(str(f.resolve()) for f in files)], timeout=10)
    except (CommandError, OSError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if status.stdout.strip() else "")


def entry(*, deployment: str, commit: str | None, system: str | None, goal: str,
          result: str, error: str | None) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "user": getpass.getuser(),
        "from": socket.gethostname(),
        "deployment": deployment,
        "commit": commit,
        "system": system,
        "goal": goal,
        "result": result,
        "error": error,
    }


async def append(session: SshSession, record: dict[str, Any]) -> None:
    await session.run(hostside.argv("record", json.dumps(record, sort_keys=True)),
                      what="recording the deploy", elevated=True)


async def read(session: SshSession) -> list[dict[str, Any]]:
    done = await session.run(hostside.argv("show_history"), what="reading the deploy history",
                             elevated=True)
    records = []
    for line in done.stdout.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a full disk or a crash: the rest still counts
    return records
