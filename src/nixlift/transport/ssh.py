"""Reaching hosts with the OpenSSH client: one ControlMaster connection per host, reused by every
command and by nix's own ssh (through NIX_SSHOPTS), so a deploy pays for one handshake per host.

Remote commands are argv lists joined with shlex quoting; no shell text is ever built from
unquoted data.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote, urlencode

from nixlift import proc
from nixlift.errors import CommandError, CopyError, SshError, first_hint
from nixlift.nix import argv as nix_argv
from nixlift.transport.elevate import Elevation, Password, elevation_error

if TYPE_CHECKING:
    # (imported where a copy needs them: a deploy connects while nix evaluates, before the
    # model and the events, ~20 ms here, are imported)
    from nixlift.events import Emit
    from nixlift.model import Machine
    from nixlift.nix.closure import NarSizes

#: seconds between looks for the master connection's socket while it logs in
_MASTER_POLL = 0.002

_DIAGNOSES = (
    (
        re.compile(r"Connection refused"),
        "nothing accepts SSH connections there: is sshd running, and are "
        "deployment.targetHost/targetPort right?",
    ),
    (
        re.compile(r"timed out|No route to host|Network is unreachable"),
        "the host did not answer: is it up and on the network, and is the address right?",
    ),
    (
        re.compile(r"Could not resolve hostname|Name or service not known"),
        "the name does not resolve: check deployment.targetHost or your ssh config",
    ),
    (
        re.compile(
            r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|"
            r"No \S+ host key is known"
        ),
        "the host's key is unknown or changed: check it is the right machine, then add its key to "
        "known_hosts (e.g. connect once with ssh); nixlift never turns host key checking off",
    ),
    (
        re.compile(r"Permission denied|Too many authentication failures"),
        "authentication failed: load the key into ssh-agent, or point deployment.sshOptions at it "
        '([ "-i" "/path/key" ]); check deployment.targetUser',
    ),
)


def diagnose(stderr: str) -> str:
    """A hint for an ssh failure, from ssh's own words."""
    return (
        first_hint(_DIAGNOSES, stderr)
        or "try `ssh` to the host by hand with the same options to see what is wrong"
    )


_COPY_DIAGNOSES = (
    (
        re.compile(r"No space left on device|Disk quota exceeded"),
        "the host's disk is full: free space under /nix (nix-collect-garbage -d there)",
    ),
    (
        re.compile(r"lacks a valid signature|is not trusted|not a trusted user", re.I),
        "the SSH user is not trusted by the host's nix-daemon: deploy as root, or as a user "
        "with sudo (deployment.targetUser; nixlift then runs nix-daemon through sudo)",
    ),
    (
        re.compile(r"(nix-daemon|nix-store).*(not found|No such file)|command not found"),
        "nix was not found on the host for a non-interactive SSH login: is it a NixOS (or "
        "Nix) host, and is nix on the PATH sshd gives commands?",
    ),
    (
        re.compile(r"sudo: .*password|a terminal is required|no askpass", re.I),
        "sudo on the host asks for a password: give --ask-sudo-password, or allow the user "
        "NOPASSWD sudo",
    ),
)


def copy_hint(tail: str) -> str:
    """A hint for a failed copy, from what ssh or nix said (not a guess)."""
    hint = first_hint(_COPY_DIAGNOSES, tail) or first_hint(_DIAGNOSES, tail)
    if hint is not None:
        return hint
    if re.search(r"Connection (closed|reset)|Broken pipe|ssh:|kex_", tail):
        return "the connection broke during the copy: check the network, then deploy again"
    return "nix's own message (the log tail) says why; `nix copy --to ssh-ng://HOST PATH` shows it"


def _is_ssh_failure(stderr: str) -> bool:
    return (
        first_hint(_DIAGNOSES, stderr) is not None
        or any(s in stderr for s in ("ssh:", "Connection closed", "kex_", "Connection reset"))
        or not stderr.strip()
    )


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host. Derive variants with dataclasses.replace."""

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10
    control_path: Path | None = None
    #: ssh's compression: it is the master connection's, which every command and copy share
    compress: bool = False

    @classmethod
    def for_machine(
        cls, machine: Machine, connect_timeout: int = 10, *, compress: bool = False
    ) -> SshTarget:
        d = machine.deployment
        if d.target_host is None:
            raise ValueError(f"{machine.name} has no targetHost: it is not reached over SSH")
        return cls(
            name=machine.name,
            host=d.target_host,
            port=d.target_port,
            user=d.target_user,
            options=d.ssh_options,
            connect_timeout=connect_timeout,
            compress=compress or d.compress,
        )

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def option_args(self) -> list[str]:
        """Options of every ssh invocation for this host. ssh takes the first value given for
        an option, so the user's deployment.sshOptions come before nixlift's defaults and win;
        only the master connection's options, which nixlift relies on, come first."""
        args: list[str] = []
        if self.control_path is not None:
            args += [
                "-o",
                f"ControlPath={self.control_path}",
                # auto: if the master went away, a command opens a connection of its own, which
                # ends with it (no: nothing is left behind in the background)
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPersist=no",
            ]
        args += list(self.options)
        if self.compress:
            args += ["-o", "Compression=yes"]
        if self.port is not None:
            args += ["-p", str(self.port)]
        args += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "ServerAliveInterval=15",
        ]
        return args

    def master_argv(self) -> list[str]:
        """The master connection: logs in, runs nothing, carries every command until stopped."""
        return [
            "ssh",
            "-M",
            "-N",
            "-T",
            "-x",
            "-o",
            "ControlMaster=yes",
            *self.option_args(),
            "--",
            self.destination,
        ]

    def ssh_argv(self, remote_command: str | None) -> list[str]:
        argv = ["ssh", "-T", "-x", *self.option_args(), "--", self.destination]
        return argv if remote_command is None else [*argv, remote_command]

    def fresh_argv(self, remote_command: str) -> list[str]:
        """ssh over a NEW connection, never a multiplexed one (not even one the user's ssh config
        would pick): proof that the host still lets someone log in."""
        plain = replace(self, control_path=None)
        return [
            "ssh",
            "-T",
            "-x",
            "-o",
            "ControlPath=none",
            "-o",
            "ControlMaster=no",
            *plain.option_args(),
            "--",
            self.destination,
            remote_command,
        ]

    def interactive_argv(self, command: Sequence[str] = ()) -> list[str]:
        """`nixlift ssh`: the same host, port, user and options, but a person at the keyboard
        (a terminal, passwords and host key prompts allowed)."""
        argv = ["ssh", *self.options, "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        return [*argv, "--", self.destination, *command]

    def nix_sshopts(self) -> str:
        """NIX_SSHOPTS for nix's own ssh. Nix 2.8 splits it on whitespace without quoting
        rules, so an option whose value keeps whitespace even in ssh's `-oKey=value` form
        cannot travel this way: it is left out whole (flag and value), and the master
        connection, opened with every option, carries it."""
        return " ".join(w for w in single_words(self.option_args()) if not re.search(r"\s", w))


# ssh's flags that take a value (ssh(1) of OpenSSH 9)
_VALUED = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def single_words(args: Sequence[str]) -> list[str]:
    """ssh options with each flag joined to its value (`-p 22` → `-p22`), and `-o "Key value"`
    (ssh_config's own spelling, which ssh accepts) as `-oKey=value`: one word per option, so
    dropping a word never leaves a flag that would swallow the next option."""
    words: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if len(arg) == 2 and arg[0] == "-" and arg[1] in _VALUED and rest:
            value = rest.pop(0)
            if arg == "-o":
                value = re.sub(r"^\s*([A-Za-z]+)\s*[=\s]\s*", r"\1=", value, count=1)
            words.append(arg + value)
        else:
            words.append(arg)
    return words


# Runs "$@" on the host and stops it when our side goes away. ssh without a terminal does not
# pass signals on; instead the command's stdin, which we keep open, reaches end of file. (A
# background job's stdin is /dev/null unless redirected: hence fd 3.)
_STOP_WITH_CONNECTION = """
exec 3<&0
"$@" </dev/null &
child=$!
( cat <&3 >/dev/null 2>&1; kill -TERM "$child" 2>/dev/null ) &
watcher=$!
wait "$child"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"""


def remote_command(argv: Sequence[str]) -> str:
    """The command string ssh hands to the remote shell, each word quoted."""
    return shlex.join(argv)


def stopping_with_connection(argv: Sequence[str]) -> list[str]:
    """argv wrapped so that it ends when our side of the connection does."""
    return ["sh", "-c", _STOP_WITH_CONNECTION, "nixlift-run", *argv]


class SshHost:
    """A host reached over SSH; its master connection lives from `open` to `close`."""

    is_local = False

    def __init__(self, target: SshTarget, control_path: Path, elevation: Elevation) -> None:
        self.name = target.name
        self.target = replace(target, control_path=control_path)
        self.elevation = elevation
        self._master: proc.Background | None = None

    @classmethod
    def for_machine(
        cls,
        machine: Machine,
        control_path: Path,
        *,
        connect_timeout: int = 10,
        password: Password | None = None,
        compress: bool = False,
    ) -> SshHost:
        d = machine.deployment
        return cls(
            SshTarget.for_machine(machine, connect_timeout, compress=compress),
            control_path,
            Elevation.for_user(d.target_user, d.privilege_escalation, password),
        )

    @property
    def destination(self) -> str:
        port = f":{self.target.port}" if self.target.port else ""
        return f"{self.target.destination}{port}"

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Log in: the master connection is nixlift's own child (ssh -M -N), ready once its
        control socket is there; stopping it later is a signal, not another ssh."""
        socket = self.target.control_path
        assert socket is not None
        master = await proc.start(self.target.master_argv())
        deadline = time.monotonic() + self.target.connect_timeout + 20
        try:
            while not socket.exists():
                if not master.running or time.monotonic() > deadline:
                    await master.stop()
                    stderr = await master.stderr()
                    raise SshError(
                        f"cannot reach {self.name} ({self.destination}) over SSH",
                        argv=master.argv,
                        returncode=master.process.returncode,
                        stderr_tail="\n".join(stderr.strip().splitlines()[-15:]),
                        hint=diagnose(stderr) if stderr.strip() else "it did not answer in time",
                        host=self.name,
                    )
                await asyncio.sleep(_MASTER_POLL)
        except asyncio.CancelledError:
            # (a connection given up halfway: an interrupted deploy, an evaluation that failed)
            await asyncio.shield(master.stop())
            raise
        self._master = master
        if self.elevation.password is None:
            return
        # With a password, the first login also tries it, once (sudo reads one line and then
        # the end of its input): a wrong one is told before anything else runs there.
        argv = self.elevation.wrap(["true"])
        done = await self._ssh(
            self.target.ssh_argv(remote_command(argv)),
            what="connecting",
            timeout=self.target.connect_timeout + 30,
            check=False,
            stdin=self.elevation.stdin_prefix(),
        )
        if done.returncode != 0:
            raise elevation_error(self.name, self.elevation, done, "logging in")

    async def close(self) -> None:
        if self._master is not None:
            await self._master.stop()
            self._master = None

    async def reopen(self, connect_timeout: int) -> None:
        await self.close()
        self.target = replace(self.target, connect_timeout=connect_timeout)
        await self.open()

    async def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        elevated: bool = False,
        stdin: bytes | None = None,
        keep_stdin_open: bool = False,
        stop_with_connection: bool = False,
        fresh_connection: bool = False,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        on_stdout: proc.LineSink | None = None,
        on_stderr: proc.LineSink | None = None,
        feed: asyncio.Queue[bytes | None] | None = None,
    ) -> proc.Completed:
        words = self.elevation.wrap(list(argv)) if elevated else list(argv)
        if stop_with_connection:
            words = stopping_with_connection(words)
        command = remote_command(words)
        ssh = self.target.fresh_argv(command) if fresh_connection else self.target.ssh_argv(command)
        return await self._ssh(
            ssh,
            what=what,
            timeout=timeout,
            check=check,
            error=error,
            stdin=stdin,
            keep_stdin_open=keep_stdin_open or stop_with_connection,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            feed=feed,
        )

    async def _ssh(
        self,
        argv: list[str],
        *,
        what: str,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        stdin: bytes | None = None,
        keep_stdin_open: bool = False,
        on_stdout: proc.LineSink | None = None,
        on_stderr: proc.LineSink | None = None,
        feed: asyncio.Queue[bytes | None] | None = None,
    ) -> proc.Completed:
        """ssh's own failures (exit 255 with a connection diagnosis) become SshError, the
        command's failures `error`."""
        done = await proc.run(
            argv,
            timeout=timeout,
            check=False,
            stdin=stdin,
            keep_stdin_open=keep_stdin_open,
            on_stderr=on_stderr,
            on_stdout=on_stdout,
            error=SshError,
            what=f"{what} on {self.name}",
            host=self.name,
            feed=feed,
        )
        if done.returncode == 255 and _is_ssh_failure(done.stderr):
            raise SshError(
                f"cannot reach {self.name} ({self.destination}) over SSH",
                argv=done.argv,
                returncode=255,
                stderr_tail=done.stderr_tail(),
                hint=diagnose(done.stderr),
                host=self.name,
            )
        if check and done.returncode != 0:
            raise error(
                f"{what} on {self.name} failed with exit status {done.returncode}",
                argv=done.argv,
                returncode=done.returncode,
                stderr_tail=done.stderr_tail(),
                host=self.name,
            )
        return done

    async def copy_to(
        self,
        paths: Sequence[str],
        *,
        use_substitutes: bool,
        emit: Emit,
        legacy: bool = False,
        remote_store: str | None = None,
        sizes: NarSizes | None = None,
    ) -> int | None:
        from nixlift.events import discard
        from nixlift.model import Stage
        from nixlift.nix.closure import NarSizes
        from nixlift.nix.logparse import NixLog, run_logged

        url = self.store_url(legacy=legacy, remote_store=remote_store)
        log = NixLog()
        source = sizes or NarSizes()
        try:
            await run_logged(
                nix_argv.copy_to(url, paths, use_substitutes=use_substitutes),
                env={"NIX_SSHOPTS": self.nix_sshopts()},
                host=self.name,
                phase=Stage.COPY,
                emit=emit,
                error=CopyError,
                what=f"copying to {self.name}",
                hint=copy_hint,
                log=log,
                # (a copy nobody is shown, of derivations to build there, is not measured)
                sizes=None if emit is discard else lambda: source.of(paths),
            )
        finally:
            if sizes is None:
                await source.close()  # (its own read: not left running once the copy ended)
        return log.bytes_sent

    def nix_sshopts(self) -> str:
        return self.target.nix_sshopts()

    def store_url(self, *, legacy: bool = False, remote_store: str | None = None) -> str:
        """The host's store for nix: `ssh-ng://` (batched: one round trip for many paths)
        through the host's `nix-daemon --stdio`, or the older `ssh://` (`nix-store --serve`)
        where there is no daemon program. A user other than root runs it through the
        escalation command, so the paths are added as root whether or not the user is
        trusted; `remote_store` instead names a store (a daemon's socket) to talk to."""
        params: dict[str, str] = {}
        if remote_store is not None:
            params["remote-store"] = remote_store
        elif self.elevation.needed:
            program = "nix-store" if legacy else "nix-daemon"
            params["remote-program"] = shlex.join(self.elevation.wrap([program]))
        query = "?" + urlencode(params, quote_via=quote) if params else ""
        return f"{'ssh' if legacy else 'ssh-ng'}://{self.target.destination}{query}"

    def interactive_argv(self, command: Sequence[str] = ()) -> list[str]:
        return self.target.interactive_argv(command)


def new_control_directory() -> Path:
    """A short private directory for control sockets (socket paths are limited to ~100 bytes);
    whoever makes it removes it."""
    return Path(tempfile.mkdtemp(prefix="nl-", dir="/tmp"))


@contextlib.asynccontextmanager
async def control_directory() -> AsyncIterator[Path]:
    """A control directory (new_control_directory) for as long as the context lasts."""
    path = new_control_directory()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
