"""`nixlift-sandbox up|down|status`: local stand-in hosts to try nixlift on.

`up` prints the demo network's path on stdout (`network=$(nixlift-sandbox up 2)`) and
everything else on stderr. Errors are reported as nixlift reports its own: `error: …`, then
`hint: …`, with the error's exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nixlift.errors import NixliftError
from nixlift_testbed import hosts
from nixlift_testbed.demo import write_network

PROG = "nixlift-sandbox"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local sandbox hosts: sshd processes in their own namespaces "
        "with their own /nix, /run and /etc, reached on loopback.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="log every command run and show tracebacks"
    )
    ss = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    q = ss.add_parser(
        "up", help="start N hosts (h1 … hN) and write an ssh config and a demo network file"
    )
    q.add_argument("count", type=int, metavar="N")
    q.add_argument(
        "--port",
        type=int,
        default=hosts.DEFAULT_PORT,
        help=f"sshd port (default {hosts.DEFAULT_PORT})",
    )
    q.add_argument(
        "--dir",
        metavar="DIR",
        help="sandbox directory (default: $NIXLIFT_SANDBOX_DIR or ~/.local/state/nixlift/sandbox)",
    )
    q = ss.add_parser("down", help="stop the hosts")
    q.add_argument("--dir", metavar="DIR")
    q.add_argument("--purge", action="store_true", help="also delete the hosts' files")
    q = ss.add_parser("status", help="show the hosts and what they run")
    q.add_argument("--dir", metavar="DIR")
    q.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format=f"{PROG}: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(run(args))
    except NixliftError as e:
        _report(e, debug=args.debug)
        return e.exit_code
    except BrokenPipeError:
        # stdout closed early (`nixlift-sandbox status --json | head`): not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _report(error: NixliftError, *, debug: bool) -> None:
    where = f"[{error.host}] " if error.host else ""
    print(f"error: {where}{error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)


def _directory(args: argparse.Namespace) -> Path:
    return Path(args.dir).resolve() if args.dir else hosts.default_directory()


async def run(args: argparse.Namespace) -> int:
    directory = _directory(args)
    if args.sandbox_command == "up":
        sandbox = await hosts.up(directory, args.count, port=args.port)
        network = write_network(
            directory,
            [h.name for h in sandbox.hosts],
            sandbox.ssh_config,
            public_key=sandbox.public_key,
        )
        for h in sandbox.hosts:
            print(f"{h.name}  {h.address}:{h.port}  pid {h.pid}", file=sys.stderr)
        print(
            f"ssh config: {sandbox.ssh_config}  (try: ssh -F {sandbox.ssh_config} "
            f"{sandbox.hosts[0].name} hostname)",
            file=sys.stderr,
        )
        print(f"demo network: {network}  (try: nixlift deploy {network})", file=sys.stderr)
        print(network)
        return 0
    if args.sandbox_command == "down":
        await hosts.down(directory, purge=args.purge)
        print(f"sandbox hosts in {directory} stopped", file=sys.stderr)
        return 0
    rows = await hosts.status(directory)
    if args.json:
        json.dump(
            [
                {
                    "name": r.name,
                    "address": r.address,
                    "port": r.port,
                    "pid": r.pid,
                    "running": r.running,
                    "currentSystem": r.current_system,
                }
                for r in rows
            ],
            sys.stdout,
            indent=2,
        )
        print()
    else:
        for r in rows:
            state = "running" if r.running else "stopped"
            print(f"{r.name}  {r.address}:{r.port}  {state}  {r.current_system or '-'}")
    return 0 if all(r.running for r in rows) else 1
