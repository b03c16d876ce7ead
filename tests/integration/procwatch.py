"""Watching every process's argv and environment while something runs (secret hygiene tests)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def watching_processes() -> Iterator[list[bytes]]:
    """Collect /proc/*/cmdline and /proc/*/environ of every process (the sandbox hosts' too:
    they share this pid namespace's view) every 10 ms until the block ends."""
    seen: list[bytes] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    with contextlib.suppress(OSError):
                        seen.append(Path(f"/proc/{pid}/{what}").read_bytes())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()
