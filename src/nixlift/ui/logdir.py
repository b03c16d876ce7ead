"""`--log-dir`: the whole story of each host in a file of its own, for after the fact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from nixlift.errors import UsageError
from nixlift.events import Event, Finished, Notice, Output, Phase, Plan, Progress, Report
from nixlift.ui.format import describe, failure_lines


class LogDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UsageError(
                f"--log-dir {directory}: a file of that name exists, not a directory",
                hint="give a directory (it is created if missing)",
            ) from None
        except OSError as e:
            raise UsageError(f"--log-dir {directory}: {e.strerror}") from None
        self._files: dict[str, TextIO] = {}

    def _file(self, host: str) -> TextIO:
        f = self._files.get(host)
        if f is None:
            f = self._files[host] = open(self.directory / log_name(host), "a", encoding="utf-8")  # noqa: SIM115
        return f

    def _write(self, host: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        f = self._file(host)
        f.write(f"{stamp} {text}\n")
        f.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Plan):
            for host in event.hosts:
                self._write(host, f"== nixlift {event.goal}")
        elif isinstance(event, Phase):
            self._write(event.host, f"== {event.phase} {event.detail}".rstrip())
        elif isinstance(event, Output):
            self._write(event.host, f"(shared) {event.line}" if event.shared else event.line)
        elif isinstance(event, Report):
            self._write(event.host, f"== {event.title}: what the host said")
            for line in event.lines:
                self._write(event.host, line)
        elif isinstance(event, Notice) and event.host:
            self._write(event.host, f"!! {event.message}")
        elif isinstance(event, Finished):
            r = event.result
            self._write(r.name, f"== {describe(r)}")
            for line in failure_lines(r, detail_lines=10_000):
                self._write(r.name, line)
        elif isinstance(event, Progress):
            pass  # counters belong on a screen, not in a log

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def log_name(host: str) -> str:
    """The file a machine's log goes to: every name, `a/b` and `../../x` too, stays inside the
    directory (`/` and anything unusual is %-escaped, as in a URL)."""
    return quote(host, safe="") + ".log"
