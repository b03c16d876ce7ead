"""Plain progress for logs and pipes: one `[host] message` line per event, on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

from nixlift.events import Event, Finished, Notice, Output, Phase, Plan, Progress
from nixlift.model import HostResult, Status

_PHASE_WORDS = {
    "build": "building",
    "connect": "connecting to",
    "copy": "copying",
    "activate": "activating:",
    "unchanged": "unchanged:",
    "wait": "waiting",
    "probe": "reading the host's state",
}


class PlainRenderer:
    def __init__(self, stream: TextIO = sys.stderr, *, verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        if isinstance(event, Plan):
            return
        if isinstance(event, Phase):
            if event.phase == "probe" and not self.verbose:
                return
            word = _PHASE_WORDS.get(event.phase, event.phase)
            self._line(event.host, f"{word} {event.detail}".rstrip())
        elif isinstance(event, Progress):
            # Only the end of a count: a line per path would flood a log.
            if self.verbose or (event.done == event.expected and event.expected > 0):
                self._line(event.host, f"{event.phase}: {format_counts(event)}")
        elif isinstance(event, Output):
            if self.verbose:
                self._line(event.host, "| " + event.line)
        elif isinstance(event, Notice):
            self._line(event.host, event.message)
        elif isinstance(event, Finished):
            self._line(event.result.name, describe(event.result))

    def _line(self, host: str | None, text: str) -> None:
        prefix = f"[{host}] " if host else ""
        print(prefix + text, file=self.stream, flush=True)


def format_counts(p: Progress) -> str:
    if p.unit == "bytes":
        return f"{p.done / 2**20:.1f}/{p.expected / 2**20:.1f} MiB"
    return f"{p.done}/{p.expected} {p.unit}"


def describe(result: HostResult) -> str:
    took = sum(d for _, d in result.durations)
    words = {
        Status.OK: "done",
        Status.UNCHANGED: "done (already up to date, nothing activated)",
        Status.REBOOT_REQUIRED: "done; REBOOT REQUIRED to finish switching",
        Status.FAILED: "FAILED",
        Status.ROLLED_BACK: "FAILED, ROLLED BACK",
        Status.SKIPPED: "skipped",
    }[result.status]
    text = f"{words} in {took:.1f} s" if result.status is not Status.SKIPPED else words
    if result.error:
        text += f": {result.error}"
    return text


def summary(results: list[HostResult], stream: TextIO = sys.stderr) -> None:
    """The closing lines: every host's outcome, failures with their output tail and a hint."""
    ok = sum(r.succeeded for r in results)
    print(f"{ok} of {len(results)} hosts succeeded", file=stream)
    for r in results:
        if r.succeeded:
            continue
        print(f"  {r.name}: {describe(r)}", file=stream)
        if r.detail:
            for line in r.detail.splitlines()[-10:]:
                print(f"    | {line}", file=stream)
        if r.hint:
            print(f"    hint: {r.hint}", file=stream)
    reboot = [r.name for r in results if r.status is Status.REBOOT_REQUIRED]
    if reboot:
        print(f"  reboot required on: {', '.join(reboot)}", file=stream)
    stream.flush()
