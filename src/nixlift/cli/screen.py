"""Where a command's progress goes: a live table on a terminal, `[host] …` lines otherwise, and
each host's whole story in --log-dir; and Ctrl-C, routed to the work it should stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixlift.cli.options import Output
from nixlift.events import Emit, tee
from nixlift.model import HostResult
from nixlift.ui.logdir import LogDir
from nixlift.ui.plain import PlainRenderer, summary

if TYPE_CHECKING:
    from rich.console import Console


def wants_live(output: Output) -> bool:
    if output.progress != "auto":
        return output.progress == "live"
    return (
        sys.stderr.isatty()
        and os.environ.get("TERM", "dumb") != "dumb"
        and not os.environ.get("CI")
    )


def console(output: Output) -> Console:
    """rich's console on stderr, coloured as --color (or NO_COLOR) says."""
    from rich.console import Console

    if output.color == "never":
        return Console(stderr=True, color_system=None)
    if output.color == "always":
        return Console(stderr=True, force_terminal=True)
    return Console(stderr=True)


@dataclass(frozen=True)
class Screen:
    """Where a command's events go (the live view or plain lines) and how results are summed up."""

    emit: Emit
    live: bool
    output: Output

    def summary(self, results: list[HostResult]) -> None:
        if self.output.quiet and all(r.succeeded for r in results):
            return
        if self.live:
            from nixlift.ui.live import render_summary

            render_summary(results, console(self.output))
        else:
            summary(results)


@contextlib.contextmanager
def screen(output: Output) -> Iterator[Screen]:
    with contextlib.ExitStack() as stack:
        sinks: list[Emit] = []
        live = wants_live(output) and not output.quiet
        if live:
            # imported on use: rich costs start-up time that plain output does not need
            from nixlift.ui.live import LiveRenderer

            sinks.append(stack.enter_context(LiveRenderer(console(output))))
        elif not output.quiet:
            sinks.append(PlainRenderer(verbose=output.verbose))
        if output.log_dir is not None:
            log_dir = LogDir(output.log_dir)
            stack.callback(log_dir.close)
            sinks.append(log_dir)
        yield Screen(tee(*sinks), live, output)


@contextlib.contextmanager
def interrupts(callback: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM call `callback` (which stops the work) instead of killing nixlift."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
