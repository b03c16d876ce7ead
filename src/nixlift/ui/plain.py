"""Plain progress for logs and pipes: one `[host] message` line per event, on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

from nixlift.events import Event, Finished, Notice, Output, Phase, Plan, Progress, Report
from nixlift.model import HostResult, Stage
from nixlift.ui.format import closing_lines, describe, format_progress

_PHASE_WORDS = {
    Stage.BUILD: "building",
    Stage.CONNECT: "connecting to",
    Stage.COPY: "copying",
    Stage.ACTIVATE: "activating:",
    Stage.UNCHANGED: "unchanged:",
    Stage.WAIT: "waiting",
    Stage.PROBE: "reading the host's state",
    Stage.ROLLBACK: "rolling back",
}


class PlainRenderer:
    def __init__(self, stream: TextIO = sys.stderr, *, verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        if isinstance(event, Plan):
            return
        if isinstance(event, Phase):
            if event.phase is Stage.PROBE and not self.verbose:
                return
            word = _PHASE_WORDS.get(event.phase, event.phase)
            self._line(event.host, f"{word} {event.detail}".rstrip())
        elif isinstance(event, Progress):
            # Only the end of a count: a line per path would flood a log.
            if self.verbose or (event.done == event.expected and event.expected > 0):
                e = event
                text = format_progress(e.done, e.expected, e.unit, e.bytes_done, e.bytes_expected)
                self._line(event.host, f"{event.phase}: {text}")
        elif isinstance(event, Output):
            # a build several hosts share: one line naming them all, not one per host
            if self.verbose and (not event.shared or event.host == event.shared[0]):
                self._line(shared_label(event.shared) or event.host, "| " + event.line)
        elif isinstance(event, Report):
            self._line(event.host, f"{event.title}:" + ("" if event.lines else " (nothing said)"))
            for line in event.lines:
                self._line(event.host, "  " + line)
        elif isinstance(event, Notice):
            self._line(event.host, event.message)
        elif isinstance(event, Finished):
            self._line(event.result.name, describe(event.result))

    def _line(self, host: str | None, text: str) -> None:
        prefix = f"[{host}] " if host else ""
        print(prefix + text, file=self.stream, flush=True)


def shared_label(hosts: tuple[str, ...]) -> str:
    """`shared: h1 h2 h3`, or `shared: h1 h2 h3 +7` for many ("" for a host's own line)."""
    if not hosts:
        return ""
    more = f" +{len(hosts) - 3}" if len(hosts) > 3 else ""
    return f"shared: {' '.join(hosts[:3])}{more}"


def summary(results: list[HostResult], stream: TextIO = sys.stderr) -> None:
    for line in closing_lines(results):
        print(line, file=stream)
    stream.flush()
