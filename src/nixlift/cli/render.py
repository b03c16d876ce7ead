"""Choosing how progress is shown: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from nixlift.events import Emit
from nixlift.model import HostResult
from nixlift.ui.plain import PlainRenderer, summary


def wants_live(args: argparse.Namespace) -> bool:
    if args.progress != "auto":
        return bool(args.progress == "live")
    return sys.stderr.isatty() and os.environ.get("TERM", "dumb") != "dumb" \
        and not os.environ.get("CI")


@contextlib.contextmanager
def progress_renderer(args: argparse.Namespace) -> Iterator[Emit]:
    if wants_live(args):
        from nixlift.ui.live import LiveRenderer

        with LiveRenderer() as live:
            args._live = True
            yield live
    else:
        args._live = False
        yield PlainRenderer(verbose=args.verbose)


def final_summary(args: argparse.Namespace, results: list[HostResult]) -> None:
    if getattr(args, "_live", False):
        from rich.console import Console

        from nixlift.ui.live import render_summary

        render_summary(results, Console(stderr=True))
    else:
        summary(results)
