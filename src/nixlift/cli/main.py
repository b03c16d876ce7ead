"""Entry point: parse argv, run the command, turn errors into text and exit codes.

Exit codes: 0 success, 1 some host failed, 2 bad usage or network file, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from nixlift.cli import commands
from nixlift.cli.parser import build_parser, split_remote_command
from nixlift.errors import CommandError, NixliftError


def main(argv: Sequence[str] | None = None) -> int:
    words, remote = split_remote_command(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(words)
    args.remote_command = remote
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="nixlift: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(commands.dispatch(args))
    except NixliftError as e:
        report(e, args)
        return e.exit_code
    except BrokenPipeError:
        # stdout closed early (`nixlift eval --json | head`): not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("nixlift: interrupted", file=sys.stderr)
        return 130


def report(error: NixliftError, args: argparse.Namespace) -> None:
    where = f"[{error.host}] " if error.host else ""
    print(f"error: {where}{error.message}", file=sys.stderr)
    if isinstance(error, CommandError):
        if error.stderr_tail and error.stderr_tail not in error.message:
            for line in error.stderr_tail.splitlines()[-15:]:
                print(f"  | {line}", file=sys.stderr)
        if args.debug and error.argv:
            print(f"  command: {' '.join(error.argv)}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    if args.debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.flush()
