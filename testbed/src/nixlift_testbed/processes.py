"""Sandbox host processes seen through /proc: alive or not, their children, stopping them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from nixlift_testbed.errors import SandboxError

#: seconds between SIGTERM and SIGKILL, and after SIGKILL, when stopping a host
STOP_TIMEOUT = 3.0


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state (field 3) on, or None if there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", errors="surrogateescape") for a in raw.split(b"\0")[:-1]]


def process_start(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether `pid` runs (zombies do not) and, given `start`, is still the same process."""
    fields = _proc_stat_fields(pid)
    if not fields or fields[0] in ("Z", "X", "x"):
        return False
    return start is None or (len(fields) >= 20 and int(fields[19]) == start)


def _is_host_process(pid: int, root: Path) -> bool:
    """Whether `pid` is the live `unshare` of the host in `root`."""
    fields = _proc_stat_fields(pid)
    if pid <= 0 or not fields or fields[0] in ("Z", "X", "x"):
        return False
    argv = _proc_cmdline(pid)
    if not argv:
        # Right after exec (and in other short windows) cmdline reads empty: trust the name.
        return _proc_comm(pid) in _HOST_PROGRAMS
    return Path(argv[0]).name in _HOST_PROGRAMS and str(root) in argv


#: what a host's process runs: `unshare`, or at first `nsenter` (into a shaped link's network
#: namespace), which then becomes `unshare` (exec, same pid)
_HOST_PROGRAMS = ("unshare", "nsenter")


def _proc_comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def scan_host_processes(directory: Path) -> list[tuple[int, Path]]:
    """(pid, host dir) of every live `unshare` of a host of the sandbox in `directory`."""
    hosts_dir = directory / "hosts"
    found: list[tuple[int, Path]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = _proc_cmdline(pid)
        if not argv or Path(argv[0]).name not in _HOST_PROGRAMS:
            continue
        for arg in argv[1:]:
            if Path(arg).parent == hosts_dir and process_alive(pid):
                found.append((pid, Path(arg)))
                break
    return found


async def _stop_host_process(pid: int, root: Path, name: str) -> None:
    """Stop one host and wait until its namespace is gone (a zombie `unshare` counts as gone).

    `unshare --fork` blocks SIGTERM, so the namespace's init (`standin-init`, its only child) gets
    SIGTERM (it kills every process of the host and exits); then SIGKILL to both (with
    --kill-child, unshare's death SIGKILLs the init too). When a pid namespace's init dies, the
    kernel kills every other process in it.
    """
    start = process_start(pid)
    if start is None or not _is_host_process(pid, root):
        return
    inits = [(child, process_start(child)) for child in _children(pid)]
    rounds = [(signal.SIGTERM, inits)] if inits else []
    rounds.append((signal.SIGKILL, [*inits, (pid, start)]))
    for sig, targets in rounds:
        for target, target_start in targets:
            if process_alive(target, target_start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not process_alive(pid, start):
                return
            await asyncio.sleep(0.01)
    raise SandboxError(
        f"sandbox host {name} (pid {pid}) did not stop",
        hint=f"look at `ps -o pid,stat,cmd --ppid {pid}`; a process in state D may be stuck",
        host=name,
    )


def _kernel_boot_id() -> str | None:
    """This machine's boot id (what a sandbox host shows for a moment between two boots)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
