"""`nixlift exec` (a command on many hosts at once) and `nixlift ssh` (a shell on one)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import replace

from nixlift import proc
from nixlift.cli.hosts_cmd import on_hosts, targets
from nixlift.cli.options import Invocation
from nixlift.deploy.fanout import local_only
from nixlift.errors import CommandError, NixliftError, UsageError
from nixlift.model import Machine
from nixlift.transport.base import Host
from nixlift.transport.ssh import SshTarget


def remote_words(command: list[str]) -> list[str]:
    """`exec -- ls -l /` runs those words; `exec -- 'ls | wc -l'` (one argument with spaces)
    is a shell command line, run by the host's `sh -c`."""
    if len(command) == 1 and any(c.isspace() for c in command[0]):
        return ["sh", "-c", command[0]]
    return command


class ExitStatus(CommandError):
    """The command ran on the host and failed there."""

    kind = "exit-status"


async def cmd_exec(inv: Invocation) -> int:
    command = list(inv.remote_command)
    if not command:
        raise UsageError("no command given", hint="nixlift exec [--on HOSTS] -- COMMAND …")
    network = await targets(inv)
    words = remote_words(command)

    async def one(m: Machine, host: Host) -> int:
        done = await host.run(
            words,
            what=shlex.join(words),
            check=False,
            stop_with_connection=True,
            on_stdout=lambda line: print(f"[{m.name}] {line}", flush=True),
            on_stderr=lambda line: print(f"[{m.name}] {line}", file=sys.stderr, flush=True),
        )
        if done.returncode != 0:
            raise ExitStatus(
                f"exit status {done.returncode}", returncode=done.returncode, host=m.name
            )
        return 0

    results, interrupted = await on_hosts(inv, network, one)
    if interrupted:
        print("nixlift: interrupted; the remote commands were stopped", file=sys.stderr)
        return 130
    failed = sorted(name for name, r in results.items() if isinstance(r, NixliftError))
    for name in failed:
        error = results[name]
        assert isinstance(error, NixliftError)
        if isinstance(error, ExitStatus):
            print(f"[{name}] {error}", file=sys.stderr)
        else:
            print(
                f"[{name}] error: {error}" + (f" (hint: {error.hint})" if error.hint else ""),
                file=sys.stderr,
            )
    total = len(results)
    print(
        f"{total - len(failed)} of {total} hosts succeeded"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


async def cmd_ssh(inv: Invocation) -> int:
    name = inv.machine or ""
    network = await targets(replace(inv, network=replace(inv.network, on=(name,), exclude=())))
    if len(network.machines) != 1:
        raise UsageError(
            f"'{name}' names {len(network.machines)} machines; nixlift ssh needs exactly one"
        )
    machine = network.machines[0]
    if machine.deployment.target_host is None:
        raise local_only(machine)
    target = SshTarget.for_machine(machine, inv.fleet.connect_timeout)
    proc.exec_replace(target.interactive_argv(inv.remote_command))
    return 0  # not reached: exec replaced this process
