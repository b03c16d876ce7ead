"""`nixlift exec` (a command on many hosts at once) and `nixlift ssh` (a shell on one)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys

from nixlift import proc
from nixlift.cli.source import resolve
from nixlift.errors import NixliftError, UsageError
from nixlift.model import Machine
from nixlift.nix.evaluate import evaluate
from nixlift.selection import Selection
from nixlift.transport.ssh import SshSession, SshTarget, control_directory


def remote_words(command: list[str]) -> list[str]:
    """`exec -- ls -l /` runs those words; `exec -- 'ls | wc -l'` (one argument with spaces)
    is a shell command line, run by the host's `sh -c`."""
    if len(command) == 1 and any(c.isspace() for c in command[0]):
        return ["sh", "-c", command[0]]
    return command


async def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.remote_command)
    if not command:
        raise UsageError("no command given", hint="nixlift exec [--on HOSTS] -- COMMAND …")
    req = resolve(args)
    network = await evaluate(req.source, req.selection, req.settings, machines="deployment")
    words = remote_words(command)
    sem = asyncio.Semaphore(args.parallel) if args.parallel > 0 else None
    failed: list[str] = []

    async def one(i: int, m: Machine, control_dir: object) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if sem is not None:
                await stack.enter_async_context(sem)
            target = SshTarget.for_machine(m, args.connect_timeout)
            try:
                session = await stack.enter_async_context(
                    SshSession(target, control / str(i)))
                done = await session.run(
                    words, what=shlex.join(words), check=False, stop_with_connection=True,
                    on_stdout=lambda line: print(f"[{m.name}] {line}", flush=True),
                    on_stderr=lambda line: print(f"[{m.name}] {line}", file=sys.stderr,
                                                 flush=True))
            except NixliftError as e:
                print(f"[{m.name}] error: {e}" + (f" (hint: {e.hint})" if e.hint else ""),
                      file=sys.stderr, flush=True)
                failed.append(m.name)
                return
            if done.returncode != 0:
                print(f"[{m.name}] exit status {done.returncode}", file=sys.stderr, flush=True)
                failed.append(m.name)

    loop = asyncio.get_running_loop()
    async with control_directory() as control:
        tasks = [asyncio.ensure_future(one(i, m, control))
                 for i, m in enumerate(network.machines)]
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            for t in tasks:
                t.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    if interrupted:
        print("nixlift: interrupted; the remote commands were stopped", file=sys.stderr)
        return 130
    total = len(network.machines)
    print(f"{total - len(failed)} of {total} hosts succeeded"
          + (f"; failed: {', '.join(sorted(failed))}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


async def cmd_ssh(args: argparse.Namespace) -> int:
    args.on, args.include_machines, args.exclude = [args.host], [], []
    req = resolve(args)
    network = await evaluate(req.source, Selection.from_args([args.host], []), req.settings,
                             machines="deployment")
    if len(network.machines) != 1:
        raise UsageError(f"'{args.host}' names {len(network.machines)} machines; "
                         "nixlift ssh needs exactly one")
    target = SshTarget.for_machine(network.machines[0], args.connect_timeout)
    proc.exec_replace(target.interactive_argv(args.remote_command))
    return 0  # not reached: exec replaced this process
