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
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nixlift.errors import NixliftError
from nixlift_testbed import hosts
from nixlift_testbed.demo import write_network
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.proxy import DEFAULT_LISTEN, DelayProxy, ssh_options

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
    q.add_argument(
        "--shaped",
        metavar="RATE",
        help="put the hosts behind a link limited to RATE each way (tc's, e.g. 10mbit): "
        "a veth pair into a network namespace of theirs, on 10.177.B.N",
    )
    q = ss.add_parser("down", help="stop the hosts")
    q.add_argument("--dir", metavar="DIR")
    q.add_argument("--purge", action="store_true", help="also delete the hosts' files")
    q = ss.add_parser("status", help="show the hosts and what they run")
    q.add_argument("--dir", metavar="DIR")
    q.add_argument("--json", action="store_true", help="print a JSON document on stdout")
    q = ss.add_parser(
        "proxy",
        help="a TCP proxy in front of a host: adds latency, can cut a connection",
        description="Listen, and forward every connection to TARGET with RTT ms of round-trip "
        "time (every chunk delayed RTT/2 each way; a new connection costs one RTT). Runs until "
        "Ctrl-C or SIGTERM, then prints its counters. Prints its address (HOST:PORT) on stdout.",
    )
    q.add_argument(
        "target", metavar="TARGET", help="a host of the sandbox (h1) or ADDRESS:PORT to forward to"
    )
    q.add_argument("--rtt", type=float, default=0.0, metavar="MS", help="round-trip time to add")
    q.add_argument(
        "--cut-after",
        type=int,
        metavar="BYTES",
        help="reset the first connection whose bytes (both ways) reach BYTES",
    )
    q.add_argument(
        "--cuts", type=int, default=1, metavar="N", help="cut this many connections (default 1)"
    )
    q.add_argument(
        "--listen",
        default=f"{DEFAULT_LISTEN}:0",
        metavar="ADDRESS:PORT",
        help=f"where to listen (default {DEFAULT_LISTEN}, a free port)",
    )
    q.add_argument("--dir", metavar="DIR")
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
        sandbox = await hosts.up(directory, args.count, port=args.port, shaped=args.shaped)
        network = write_network(
            directory,
            [h.name for h in sandbox.hosts],
            sandbox.ssh_config,
            public_key=sandbox.public_key,
        )
        for h in sandbox.hosts:
            print(f"{h.name}  {h.address}:{h.port}  pid {h.pid}", file=sys.stderr)
        if sandbox.link is not None:
            link = sandbox.link
            print(
                f"behind a {link.rate} link: {link.outside} (here, {link.gateway}) to "
                f"{link.inside} in network namespace {link.netns}; a service beside the hosts "
                f"can listen on {link.service_address}",
                file=sys.stderr,
            )
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
    if args.sandbox_command == "proxy":
        return await _proxy(args, directory)
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


def _address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SandboxError(f"{what} {text!r} is not ADDRESS:PORT")
    return host, int(port)


async def _proxy(args: argparse.Namespace, directory: Path) -> int:
    """Run a DelayProxy until SIGINT or SIGTERM; its address on stdout, the rest on stderr."""
    if args.rtt < 0 or (args.cut_after is not None and args.cut_after < 0):
        raise SandboxError("--rtt and --cut-after are not negative")
    try_line = None
    if ":" in args.target:
        upstream = _address(args.target, "the target")
    else:
        sandbox = hosts.load(directory)
        host = sandbox.host(args.target)
        upstream = (host.address, host.port)
        try_line = "ssh " + " ".join(ssh_options(sandbox, host.name))
    proxy = DelayProxy(
        upstream,
        rtt=args.rtt / 1000,
        cut_after=args.cut_after,
        cuts=args.cuts,
        listen=_address(args.listen, "--listen"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await proxy.start()
    except OSError as e:
        raise SandboxError(f"the proxy cannot listen on {args.listen}: {e.strerror}") from e
    try:
        address, port = proxy.address
        print(f"{address}:{port}", flush=True)
        what = f"proxy {address}:{port} -> {upstream[0]}:{upstream[1]}, {args.rtt:g} ms round trip"
        if args.cut_after is not None:
            what += f", cutting {args.cuts} connection(s) at {args.cut_after} bytes"
        print(what, file=sys.stderr)
        if try_line is not None:
            print(f"try: {try_line} -p {port} root@{address} true", file=sys.stderr)
        await stop.wait()
    finally:
        await proxy.close()
    print(f"proxy stopped: {proxy.stats.summary()}", file=sys.stderr, flush=True)
    return 0
