"""Reaching hosts with the OpenSSH client: one ControlMaster connection per host, reused by every
command and by nix's own ssh (through NIX_SSHOPTS), so a deploy pays for one handshake per host.

Remote commands are argv lists joined with shlex quoting; no shell text is ever built from
unquoted data.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from nixlift import proc
from nixlift.errors import CommandError, SshError
from nixlift.model import Machine

#: seconds a master connection stays up with no command using it
CONTROL_PERSIST = 120

_DIAGNOSES = (
    (re.compile(r"Connection refused"),
     "nothing accepts SSH connections there: is sshd running, and are "
     "deployment.targetHost/targetPort right?"),
    (re.compile(r"timed out|No route to host|Network is unreachable"),
     "the host did not answer: is it up and on the network, and is the address right?"),
    (re.compile(r"Could not resolve hostname|Name or service not known"),
     "the name does not resolve: check deployment.targetHost or your ssh config"),
    (re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|"
                r"No \S+ host key is known"),
     "the host's key is unknown or changed: check it is the right machine, then add its key to "
     "known_hosts (e.g. connect once with ssh); nixlift never turns host key checking off"),
    (re.compile(r"Permission denied|Too many authentication failures"),
     "authentication failed: load the key into ssh-agent, or point deployment.sshOptions at it "
     "([ \"-i\" \"/path/key\" ]); check deployment.targetUser"),
)


def diagnose(stderr: str) -> str:
    """A hint for an ssh failure, from ssh's own words."""
    for pattern, hint in _DIAGNOSES:
        if pattern.search(stderr):
            return hint
    return "try `ssh` to the host by hand with the same options to see what is wrong"


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host. Derive variants with dataclasses.replace."""

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10
    #: prefix for commands that need root when `user` is not root
    elevate: tuple[str, ...] = ()
    control_path: Path | None = field(default=None, compare=False)

    @classmethod
    def for_machine(cls, machine: Machine, connect_timeout: int = 10) -> SshTarget:
        d = machine.deployment
        user = d.target_user
        return cls(
            name=machine.name,
            host=d.target_host,
            port=d.target_port,
            user=user,
            options=d.ssh_options,
            connect_timeout=connect_timeout,
            elevate=() if user in (None, "root") else d.privilege_escalation,
        )

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def option_args(self) -> list[str]:
        """Options shared by every ssh invocation for this host (ours, then the user's)."""
        args = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
        ]
        if self.control_path is not None:
            args += [
                "-o", f"ControlPath={self.control_path}",
                # auto: if the master went away (idle timeout), the next command opens a new one
                "-o", "ControlMaster=auto",
                "-o", f"ControlPersist={CONTROL_PERSIST}",
            ]
        if self.port is not None:
            args += ["-p", str(self.port)]
        return args + list(self.options)

    def ssh_argv(self, remote_command: str | None) -> list[str]:
        argv = ["ssh", "-T", "-x", *self.option_args(), "--", self.destination]
        return argv if remote_command is None else [*argv, remote_command]

    def interactive_argv(self, command: Sequence[str] = ()) -> list[str]:
        """`nixlift ssh`: the same host, port, user and options, but a person at the keyboard
        (a terminal, passwords and host key prompts allowed)."""
        argv = ["ssh", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        return [*argv, *self.options, "--", self.destination, *command]

    def fresh_argv(self, remote_command: str) -> list[str]:
        """ssh over a NEW connection, never a multiplexed one (not even one the user's ssh config
        would pick): proof that the host still lets someone log in."""
        target = replace(self, control_path=None)
        argv = target.ssh_argv(remote_command)
        i = argv.index("--")
        return [*argv[:i], "-o", "ControlPath=none", "-o", "ControlMaster=no", *argv[i:]]

    def nix_sshopts(self) -> str:
        """NIX_SSHOPTS for nix-copy-closure. Nix 2.8 splits it on whitespace without quoting
        rules, so options containing whitespace cannot travel this way; the master connection
        (opened with every option) carries them."""
        return " ".join(a for a in self.option_args() if not re.search(r"\s", a))


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


class SshSession:
    """A host's master connection, opened on entry and closed on exit."""

    def __init__(self, target: SshTarget, control_path: Path) -> None:
        self.target = replace(target, control_path=control_path)

    async def __aenter__(self) -> SshSession:
        await self.run_raw("true", what="connecting", timeout=self.target.connect_timeout + 20)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self.target.control_path is None or not self.target.control_path.exists():
            return
        argv = ["ssh", *self.target.option_args(), "-O", "exit", "--", self.target.destination]
        with contextlib.suppress(CommandError):
            await proc.run(argv, check=False, timeout=10)

    async def run_raw(
        self,
        command: str,
        *,
        what: str,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        stdin: bytes | None = None,
        keep_stdin_open: bool = False,
        on_stderr: proc.LineSink | None = None,
        on_stdout: proc.LineSink | None = None,
    ) -> proc.Completed:
        """Run a command string (already quoted) on the host. ssh's own failures (exit 255 with
        a connection diagnosis) become SshError, the command's failures `error`."""
        done = await proc.run(
            self.target.ssh_argv(command),
            timeout=timeout,
            check=False,
            stdin=stdin,
            keep_stdin_open=keep_stdin_open,
            on_stderr=on_stderr,
            on_stdout=on_stdout,
            error=SshError,
            what=f"{what} on {self.target.name}",
            host=self.target.name,
        )
        if done.returncode == 255 and _is_ssh_failure(done.stderr):
            raise SshError(
                f"cannot reach {self.target.name} ({self.target.destination}"
                f"{':' + str(self.target.port) if self.target.port else ''}) over SSH",
                argv=done.argv,
                returncode=255,
                stderr_tail=done.stderr_tail(),
                hint=diagnose(done.stderr),
                host=self.target.name,
            )
        if check and done.returncode != 0:
            raise error(
                f"{what} on {self.target.name} failed with exit status {done.returncode}",
                argv=done.argv,
                returncode=done.returncode,
                stderr_tail=done.stderr_tail(),
                host=self.target.name,
            )
        return done

    async def run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        elevated: bool = False,
        timeout: float | None = None,
        check: bool = True,
        error: type[CommandError] = CommandError,
        on_stderr: proc.LineSink | None = None,
        on_stdout: proc.LineSink | None = None,
        stop_with_connection: bool = False,
        keep_stdin_open: bool = False,
    ) -> proc.Completed:
        """Run argv on the host. With `stop_with_connection`, the command is stopped when this
        side is (a cancelled task, Ctrl-C); never use it for activation, which must finish."""
        words = [*self.target.elevate, *argv] if elevated else list(argv)
        if stop_with_connection:
            words = ["sh", "-c", _STOP_WITH_CONNECTION, "nixlift-run", *words]
        return await self.run_raw(
            remote_command(words),
            what=what,
            timeout=timeout,
            check=check,
            error=error,
            keep_stdin_open=stop_with_connection or keep_stdin_open,
            on_stderr=on_stderr,
            on_stdout=on_stdout,
        )


def _is_ssh_failure(stderr: str) -> bool:
    return (
        any(p.search(stderr) for p, _ in _DIAGNOSES)
        or any(s in stderr for s in ("ssh:", "Connection closed", "kex_", "Connection reset"))
        or not stderr.strip()
    )


@contextlib.asynccontextmanager
async def control_directory() -> AsyncIterator[Path]:
    """A short private directory for control sockets (socket paths are limited to ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nl-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
