"""The one place that starts processes.

Every command is an argv list (never a shell string built here), checked by default, logged at
debug level, bounded by an optional timeout, and killed with its whole process group when it times
out or the awaiting task is cancelled, so no child outlives the work that started it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nixlift.errors import CommandError, MissingProgramError

if TYPE_CHECKING:
    # (imported where used: a deploy starts its evaluation before it imports asyncio, ~30 ms
    # of a start; see start_early)
    import asyncio

log = logging.getLogger("nixlift.proc")

LineSink = Callable[[str], None]

#: how many trailing stderr lines an error keeps
STDERR_TAIL_LINES = 25
#: seconds between SIGTERM and SIGKILL when a process group is stopped
KILL_GRACE = 3.0
#: longest line read from a child: nix-instantiate --json prints a whole network as one line
LINE_LIMIT = 256 * 2**20
#: see run's `settle`: what a child wrote before it exited is in its pipes, read in the loop's
#: next turn (as it polls the pipes before it runs timers); this is a margin, not a wait
SETTLE = 0.002


@dataclass(frozen=True)
class Completed:
    """A command that ran to its end: its argv, exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    #: stdout as bytes, for `binary_stdout` (key material: kept exactly, never shown)
    data: bytes = field(default=b"", repr=False)

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        return "\n".join(self.stderr.rstrip("\n").splitlines()[-lines:])


def describe(argv: Sequence[str], redact: Sequence[str] = ()) -> str:
    """A shell-like rendering of argv for logs and errors, with secrets masked."""
    text = shlex.join(argv)
    for secret in redact:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def require_program(name: str, hint: str = "") -> str:
    """Absolute path of `name` on PATH, or a MissingProgramError naming it."""
    found = shutil.which(name)
    if found is None:
        raise MissingProgramError(
            f"'{name}' was not found on PATH",
            hint=hint or _INSTALL_HINTS.get(name, f"install {name} and make sure it is on PATH"),
        )
    return found


_NIX_HINT = "install Nix ≥ 2.8 (on Debian: apt-get install nix-bin nix-setup-systemd)"
_INSTALL_HINTS = {
    "nix": _NIX_HINT,
    "nix-instantiate": _NIX_HINT,
    "nix-build": _NIX_HINT,
    "nix-store": _NIX_HINT,
    "nix-copy-closure": _NIX_HINT,
    "ssh": "install OpenSSH's client (on Debian: apt-get install openssh-client)",
    "sshd": "install OpenSSH's server (on Debian: apt-get install openssh-server)",
    "ssh-keygen": "install OpenSSH's client (on Debian: apt-get install openssh-client)",
}


def _die_with_parent() -> None:
    """In the child, before exec: be sent SIGTERM when nixlift dies, even by SIGKILL. Children
    run in their own session (so a terminal's Ctrl-C reaches only nixlift, which decides), and
    without this an ssh left behind would keep a host's lock and sessions alive."""
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@functools.cache
def _libc() -> Any:
    # (loaded in the parent, before any fork: only where there is no setpriv, so that most
    # commands never import ctypes)
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


_PR_SET_PDEATHSIG = 1


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def _dying_with_parent(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """argv and the spawn options that make the child die with nixlift (see _die_with_parent):
    through util-linux's `setpriv --pdeathsig TERM` where this machine has it, else a
    preexec_fn. A preexec_fn makes Python fork the whole nixlift process and run Python code in
    the child before exec: not safe when threads run (Python's documentation: the child may
    deadlock), and ~2.5 ms more of the event loop's time per command here (4.0 ms against 1.3
    ms to start `true`; a deploy starts 5-50 commands)."""
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "TERM", "--", *argv], {}
    _libc()
    return argv, {"preexec_fn": _die_with_parent}


@functools.cache
def _protocol() -> Callable[[asyncio.AbstractEventLoop], asyncio.SubprocessProtocol]:
    import asyncio

    class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
        """Also says when the child itself has exited: asyncio's wait() waits for its pipes
        too, and a process it started may hold them long after (see run's `settle`)."""

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            super().__init__(limit=LINE_LIMIT, loop=loop)
            self.exited: asyncio.Future[None] = loop.create_future()

        def process_exited(self) -> None:
            super().process_exited()
            if not self.exited.done():
                self.exited.set_result(None)

    return _Protocol


class _Child:
    """A running child as run() drives it: its pipes, a future done when it has exited (before
    its pipes are closed, maybe), and how to wait for it, see its status, close our ends."""

    __slots__ = ("close", "exited", "pid", "returncode", "stderr", "stdin", "stdout", "wait")

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
        exited: asyncio.Future[None],
        returncode: Callable[[], int | None],
        wait: Callable[[], Awaitable[int]],
        close: Callable[[], None],
    ) -> None:
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self.exited, self.returncode, self.wait, self.close = exited, returncode, wait, close


async def _spawn(
    argv: list[str], stdin: bool, env: dict[str, str] | None, cwd: str | Path | None
) -> _Child:
    import asyncio

    spawned, dying = _dying_with_parent(argv)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _protocol()(loop),
        *spawned,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
        **dying,
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    exited: asyncio.Future[None] = protocol.exited  # type: ignore[attr-defined]
    return _Child(
        proc.pid,
        proc.stdin,
        proc.stdout,
        proc.stderr,
        exited,
        transport.get_returncode,
        proc.wait,
        transport.close,
    )


class _Early:
    """A child started before the event loop runs (start_early); the run() of the same argv
    takes it over (_claim)."""

    def __init__(self, popen: subprocess.Popen[bytes], pidfd: int) -> None:
        self.popen = popen
        self.pidfd = pidfd

    async def attach(self) -> _Child:
        import asyncio

        loop = asyncio.get_running_loop()
        readers: list[asyncio.StreamReader] = []
        closing: list[asyncio.BaseTransport] = []
        for pipe in (self.popen.stdout, self.popen.stderr):
            reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                pipe,
            )
            readers.append(reader)
            closing.append(transport)
        exited: asyncio.Future[None] = loop.create_future()

        def reap() -> None:
            loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.popen.wait()  # (it has exited: the pidfd said so)
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(self.pidfd, reap)

        async def wait() -> int:
            await asyncio.shield(exited)
            return self.popen.returncode

        def close() -> None:
            for transport in closing:
                transport.close()

        return _Child(
            self.popen.pid,
            None,
            readers[0],
            readers[1],
            exited,
            lambda: self.popen.returncode,
            wait,
            close,
        )

    def stop(self) -> None:
        """Not taken over: stopped with its group, and reaped."""
        _kill_group(self.popen, signal.SIGTERM)
        try:
            self.popen.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(self.popen, signal.SIGKILL)
            self.popen.wait()
        os.close(self.pidfd)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


#: children started by start_early and not yet taken over, by argv
_EARLY: dict[tuple[str, ...], _Early] = {}


def start_early(argv: Sequence[str]) -> bool:
    """Start argv now, before the event loop (and asyncio) is there: the run() of the same
    argv, with no stdin, environment or directory of its own, takes it over and reads its
    output as if it had started it. A deploy starts its evaluation this way, ~0.1 s before it
    could otherwise. False (nothing started) where it cannot die with nixlift (no setpriv) or
    be waited for from the event loop (no pidfd: Linux < 5.3); what stop_early() finds still
    untaken at the end is stopped."""
    argv = [str(a) for a in argv]
    if _setpriv() is None or not hasattr(os, "pidfd_open") or tuple(argv) in _EARLY:
        return False
    require_program(argv[0])
    log.debug("start early: %s", describe(argv))
    spawned, _ = _dying_with_parent(argv)  # (through setpriv: no preexec_fn)
    popen = subprocess.Popen(
        spawned,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:
        _kill_group(popen, signal.SIGKILL)
        popen.wait()
        return False
    _EARLY[tuple(argv)] = _Early(popen, pidfd)
    return True


def stop_early() -> None:
    """Stop what start_early started and no run() took over (the command ended before it
    needed it, or needed something else)."""
    while _EARLY:
        _, early = _EARLY.popitem()
        log.debug("started early and not used: stopped (pid %d)", early.popen.pid)
        early.stop()


def _claim(argv: list[str]) -> _Early | None:
    return _EARLY.pop(tuple(argv), None)


async def _pump(
    stream: asyncio.StreamReader | None,
    keep: list[str] | deque[str],
    sink: LineSink | None,
) -> None:
    if stream is None:
        return
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace")
        keep.append(line)
        if sink is not None:
            sink(line.rstrip("\n"))


class _Stoppable(Protocol):
    pid: int

    def wait(self) -> Awaitable[int]: ...


def _kill_group(proc: _Stoppable | subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: _Stoppable) -> None:
    import asyncio

    _kill_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except TimeoutError:
        _kill_group(proc, signal.SIGKILL)
        await proc.wait()


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    keep_stdin_open: bool = False,
    timeout: float | None = None,
    check: bool = True,
    on_stdout: LineSink | None = None,
    on_stderr: LineSink | None = None,
    error: type[CommandError] = CommandError,
    what: str = "",
    hint: str = "",
    host: str | None = None,
    cwd: str | Path | None = None,
    redact: Sequence[str] = (),
    binary_stdout: bool = False,
    feed: asyncio.Queue[bytes | None] | None = None,
    settle: bool = False,
    started: Callable[[], None] | None = None,
) -> Completed:
    """Run argv to completion and return its output (stdout as bytes in `data` with
    `binary_stdout`).

    `env` is merged over this process's environment. `stdin` is written to the child; with
    `keep_stdin_open` its stdin then stays open until it exits: its end of file tells a remote
    command that we are gone (see Host.run's stop_with_connection). With `feed`, what is put
    into that queue is written to the child's stdin as it comes, and None closes it (a call
    that goes on: the host's lock takes the deploy's record this way). With `check`, a non-zero
    exit raises `error` (a CommandError subclass) whose message starts with `what` and carries
    the stderr tail; a timeout raises the same type with returncode None.

    With `settle`, a child that exits 0 is done once what it wrote is read (SETTLE seconds at
    most), even if a process it started still holds its stdout or stderr: an SSH ControlMaster
    holds a client's until that client's channel is closed, a round trip after nix has killed
    the client (its `ssh-ng://` copies). A failure still waits for all of it (the error's
    text may come last).

    `started` is called once the child runs, before its output is read: work of the caller's
    that can go on meanwhile (the child's output waits in its pipes until it is done).

    A child start_early() started with this argv is taken over, if this run gives it no stdin,
    environment or directory.
    """
    import asyncio

    argv = [str(a) for a in argv]
    require_program(argv[0])
    full_env = None if env is None else {**os.environ, **env}
    shown = describe(argv, redact)
    writes = stdin is not None or keep_stdin_open or feed is not None
    early = _claim(argv) if not writes and env is None and cwd is None else None
    log.debug(
        "run%s%s: %s", f" [{host}]" if host else "", " (started early)" if early else "", shown
    )
    proc = await early.attach() if early is not None else await _spawn(argv, writes, full_env, cwd)
    if started is not None:
        try:
            started()
        except BaseException:
            await asyncio.shield(_stop(proc))
            raise
    out: list[str] = []
    err: deque[str] = deque(maxlen=2000)
    data = bytearray()

    async def read_all(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and (chunk := await stream.read(65536)):
            data.extend(chunk)

    async def feeding(writer: asyncio.StreamWriter, queue: asyncio.Queue[bytes | None]) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while (chunk := await queue.get()) is not None:
                writer.write(chunk)
                await writer.drain()
            writer.close()

    async def communicate() -> int:
        if stdin is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            if not keep_stdin_open and feed is None:
                proc.stdin.close()
        fed = None
        if feed is not None and proc.stdin is not None:
            fed = asyncio.ensure_future(feeding(proc.stdin, feed))
        try:
            reading = asyncio.gather(
                read_all(proc.stdout) if binary_stdout else _pump(proc.stdout, out, on_stdout),
                _pump(proc.stderr, err, on_stderr),
            )
            if settle:
                first: set[asyncio.Future[Any]] = {reading, proc.exited}
                await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done() and proc.returncode() == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reading), SETTLE)
                    if not reading.done():
                        log.debug("%s: exited; its output is still held open: not read", shown)
                        reading.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reading
                        proc.close()  # (our ends of its pipes)
                        return 0
            await reading
            return await proc.wait()
        finally:
            if fed is not None:
                fed.cancel()

    label = what or f"'{Path(argv[0]).name}'"
    try:
        returncode = await asyncio.wait_for(communicate(), timeout)
    except TimeoutError:
        await _stop(proc)
        raise error(
            f"{label} did not finish within {timeout:g} s",
            argv=argv,
            stderr_tail="".join(err)[-4000:],
            hint=hint,
            host=host,
        ) from None
    except BaseException:
        # Cancellation (Ctrl-C, a failing sibling task): take the whole group down with us.
        await asyncio.shield(_stop(proc))
        raise
    result = Completed(tuple(argv), returncode, "".join(out), "".join(err), bytes(data))
    if check and returncode != 0:
        raise error(
            f"{label} failed with exit status {returncode}",
            argv=argv,
            returncode=returncode,
            stderr_tail=result.stderr_tail(),
            hint=hint,
            host=host,
        )
    return result


class Background:
    """A child that runs alongside nixlift's work until stopped (an SSH master connection):
    in its own session, stopped with its whole group, sent SIGTERM should nixlift die."""

    def __init__(self, process: asyncio.subprocess.Process, argv: tuple[str, ...]) -> None:
        self.process = process
        self.argv = argv

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stderr(self) -> str:
        """What it wrote on stderr (once it has ended)."""
        if self.process.stderr is None:
            return ""
        return (await self.process.stderr.read()).decode("utf-8", errors="replace")

    async def stop(self) -> None:
        if self.running:
            await _stop(self.process)


async def start(argv: Sequence[str]) -> Background:
    """Start argv in the background (stdin and stdout closed, stderr kept for when it fails)."""
    import asyncio

    argv = [str(a) for a in argv]
    require_program(argv[0])
    log.debug("start: %s", describe(argv))
    spawned, dying = _dying_with_parent(argv)
    process = await asyncio.create_subprocess_exec(
        *spawned,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **dying,
    )
    return Background(process, tuple(argv))


def spawn_detached(
    argv: Sequence[str], log_file: Path, *, env: Mapping[str, str] | None = None
) -> int:
    """Start a long-lived daemon in its own session that outlives nixlift; return its pid.

    Only the test bed uses this: its hosts must keep running after `nixlift-sandbox up` exits.
    """
    argv = [str(a) for a in argv]
    require_program(argv[0])
    log.debug("spawn: %s", describe(argv))
    full_env = None if env is None else {**os.environ, **env}
    with open(log_file, "ab") as out:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    return child.pid


def exec_replace(argv: Sequence[str]) -> None:
    """Become argv (an interactive `ssh`): the terminal is the user's, nothing is captured."""
    argv = [str(a) for a in argv]
    path = require_program(argv[0])
    log.debug("exec: %s", describe(argv))
    os.execv(path, argv)  # noqa: S606 (an argv list, no shell)
