"""A TCP proxy that stands for a distant link: it delays bytes, and it can cut a connection.

Put it between a deployer and a sandbox host (netem, the kernel's delay emulator, is not in
every kernel; this proxy is plain asyncio and needs nothing):

    async with DelayProxy(("127.77.1.1", 2222), rtt=0.050) as proxy:
        host, port = proxy.address                  # connect here instead
        ...
        proxy.stats.connections, proxy.stats.bytes_up, proxy.stats.cuts

What it does to a connection, as a link with that round-trip time would:

- **latency, not a rate limit**: every chunk read on one side is written to the other side
  `rtt / 2` after it arrived, whatever its size; chunks keep their order and reading goes on
  while earlier chunks wait, so a stream flows at full speed, only later. Up to
  `MAX_IN_FLIGHT` bytes per direction wait at once (then reading pauses, as TCP's window would).
- **a new connection costs a round trip**, as TCP's handshake does: the proxy connects to the
  host `rtt` after it accepted the client (what the client sent meanwhile waits).
- **end of file and resets travel too**: a half-close (`shutdown(SHUT_WR)`) reaches the other
  side after the same delay; a reset of either side resets the other.
- **a cut** (`cut_after=N`): the first connection whose forwarded bytes (both directions
  together) reach N gets exactly N bytes through, then both of its sockets are reset (SO_LINGER
  0, then close: the peers see ECONNRESET, as after a Wi-Fi drop or a middlebox's reset). Only
  `cuts` connections are cut (one by default), so a retry over a new connection succeeds.

Counters (`stats`): connections accepted, bytes forwarded each way, cuts made, per connection.

An SSH client reaching a sandbox host through the proxy connects to the proxy's address and
port, so its host key check must look the key up under the host's own known_hosts name:
`ssh_options(sandbox, "h1")` gives `-F SSH_CONFIG -o HostKeyAlias=[127.77.B.N]:PORT`, and
`deployment(sandbox, "h1", proxy.address)` a network machine's `deployment.targetHost`,
`targetPort` and `sshOptions` for it.

Synchronous code (benchmarks) runs a proxy on a thread of its own: `with in_thread(DelayProxy(…))
as proxy:` (see `nixlift_testbed.background`). From a shell: `nixlift-sandbox proxy h1 --rtt 50`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from nixlift_testbed.render import host_key_alias

if TYPE_CHECKING:
    from nixlift_testbed.hosts import Sandbox

log = logging.getLogger("nixlift_testbed.proxy")

#: where a proxy listens unless told otherwise. In 127.77.0.0/16, whose local route the sandbox
#: gives `quickack` (see hosts._ensure_route): on plain 127.0.0.1 the client's delayed ACKs
#: and Nagle's algorithm stall small writes by up to 40 ms, noise on top of the emulated delay.
#: Block 0 of that range is never a sandbox's (blocks start at 1).
DEFAULT_LISTEN = "127.77.0.1"
#: bytes per direction and connection that may wait for their delivery time at once
MAX_IN_FLIGHT = 16 * 2**20
#: bytes read at a time
CHUNK = 64 * 2**10
#: seconds a cut waits for the bytes before it to leave the socket (a reset discards the rest)
_FLUSH_WAIT = 2.0


@dataclass
class ConnectionStats:
    """One accepted connection: bytes forwarded each way, and whether it was cut."""

    number: int
    bytes_up: int = 0
    bytes_down: int = 0
    cut: bool = False
    #: whether the proxy reached the upstream address
    connected: bool = False
    closed: bool = False

    @property
    def total(self) -> int:
        return self.bytes_up + self.bytes_down


@dataclass
class ProxyStats:
    """Counters of a proxy. `bytes_up`: client → upstream; `bytes_down`: upstream → client."""

    per_connection: list[ConnectionStats] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(self.per_connection)

    @property
    def bytes_up(self) -> int:
        return sum(c.bytes_up for c in self.per_connection)

    @property
    def bytes_down(self) -> int:
        return sum(c.bytes_down for c in self.per_connection)

    @property
    def cuts(self) -> int:
        return sum(1 for c in self.per_connection if c.cut)

    @property
    def open(self) -> int:
        return sum(1 for c in self.per_connection if not c.closed)

    def summary(self) -> str:
        return (
            f"{self.connections} connection(s), {self.bytes_up} bytes up, "
            f"{self.bytes_down} bytes down, {self.cuts} cut"
        )


class _Reset(Exception):
    """The connection ends with a reset (a cut, or one side reset it)."""


# What a direction's queue carries: bytes, end of file, or a reset from the sending side.
_EOF = b""
_RESET = None


class DelayProxy:
    """A TCP proxy to `upstream` ((host, port)) adding `rtt` seconds of round-trip time; see
    the module's docstring. An async context manager: listening inside the block, every
    connection reset and the port closed after it."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        rtt: float = 0.0,
        cut_after: int | None = None,
        cuts: int = 1,
        listen: tuple[str, int] = (DEFAULT_LISTEN, 0),
    ) -> None:
        if rtt < 0:
            raise ValueError(f"a round-trip time is not negative: {rtt}")
        if cut_after is not None and cut_after < 0:
            raise ValueError(f"cut_after is a number of bytes: {cut_after}")
        self.upstream = upstream
        self.rtt = rtt
        self.cut_after = cut_after
        self._cuts_left = cuts if cut_after is not None else 0
        self.listen = listen
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the proxy listens on."""
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, self.listen[0], self.listen[1], limit=CHUNK
        )

    async def close(self) -> None:
        """Stop listening and reset every connection still open."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _reset(writer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -----------------------------------------------------------------------------------------

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ConnectionStats(number=self.stats.connections + 1)
        self.stats.per_connection.append(conn)
        task = asyncio.get_running_loop().create_task(self._serve(conn, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, conn: ConnectionStats, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        reset = False
        try:
            if self.rtt:
                await asyncio.sleep(self.rtt)  # TCP's handshake: one round trip
            try:
                upstream_r, upstream_w = await asyncio.open_connection(*self.upstream, limit=CHUNK)
            except OSError as e:
                log.debug("proxy: cannot reach %s:%s: %s", *self.upstream, e)
                reset = True  # as a refused connection looks through a router: a reset
                return
            conn.connected = True
            self._writers.add(upstream_w)
            up = _Direction(self, conn, client_r, upstream_w, upward=True)
            down = _Direction(self, conn, upstream_r, client_w, upward=False)
            try:
                async with asyncio.TaskGroup() as group:
                    for direction in (up, down):
                        group.create_task(direction.read())
                        group.create_task(direction.write())
            except* _Reset:
                reset = True
        finally:
            conn.closed = True
            for w in (client_w, upstream_w):
                if w is None:
                    continue
                self._writers.discard(w)
                if reset:
                    _reset(w)
                else:
                    w.close()

    def _take_cut(self, conn: ConnectionStats, size: int) -> int | None:
        """How many of the next `size` bytes of `conn` go through before it is cut, or None
        if it is not cut within them."""
        if self.cut_after is None or conn.cut or self._cuts_left <= 0:
            return None
        if conn.total + size < self.cut_after:
            return None
        self._cuts_left -= 1
        conn.cut = True
        return max(0, self.cut_after - conn.total)


class _Direction:
    """One direction of a proxied connection: a reader stamping chunks with their delivery
    time, a writer delivering them then."""

    def __init__(
        self,
        proxy: DelayProxy,
        conn: ConnectionStats,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        upward: bool,
    ) -> None:
        self.proxy = proxy
        self.conn = conn
        self.source = source
        self.sink = sink
        self.upward = upward
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        self.waiting = 0
        self.room = asyncio.Event()
        self.room.set()

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.proxy.rtt / 2
        while True:
            await self.room.wait()
            try:
                data = await self.source.read(CHUNK)
            except OSError:  # the sending side reset (or lost) its connection
                self.queue.put_nowait((loop.time() + delay, _RESET))
                return
            self.queue.put_nowait((loop.time() + delay, data))
            if not data:
                return
            self.waiting += len(data)
            if self.waiting >= MAX_IN_FLIGHT:
                self.room.clear()

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await self.queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is _RESET:
                raise _Reset
            if data == _EOF:
                if self.sink.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.sink.write_eof()
                return
            assert data is not None
            self.waiting -= len(data)
            if self.waiting < MAX_IN_FLIGHT:
                self.room.set()
            if self.conn.cut:  # the other direction is cutting: nothing more goes through
                raise _Reset
            through = self.proxy._take_cut(self.conn, len(data))
            if through is not None:
                await self._deliver(data[:through])
                await _flushed(self.sink)
                log.debug("proxy: cut connection %d after %d bytes", self.conn.number, through)
                raise _Reset
            await self._deliver(data)

    async def _deliver(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.sink.write(data)
            await self.sink.drain()
        except OSError as e:  # the receiving side went away: the whole connection does
            raise _Reset from e
        if self.upward:
            self.conn.bytes_up += len(data)
        else:
            self.conn.bytes_down += len(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not a FIN: SO_LINGER on, with a timeout of 0, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _flushed(writer: asyncio.StreamWriter) -> None:
    """Wait (a little) until the kernel has sent and seen acknowledged what was written, so a
    reset right after does not discard bytes that were meant to go through before the cut."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    deadline = time.monotonic() + _FLUSH_WAIT
    buf = bytearray(4)
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0:
            return
        await asyncio.sleep(0.001)


# ---------------------------------------------------------------------------------------------
# Reaching a sandbox host through a proxy


def ssh_options(sandbox: Sandbox, host: str) -> list[str]:
    """ssh options to log in to sandbox host `host` at another address and port (a proxy's):
    the sandbox's ssh config (key, known_hosts) and the host's own name in known_hosts."""
    h = sandbox.host(host)
    return [
        "-F",
        str(sandbox.ssh_config),
        "-o",
        f"HostKeyAlias={host_key_alias(h.address, h.port)}",
    ]


def deployment(sandbox: Sandbox, host: str, address: tuple[str, int]) -> dict[str, object]:
    """`deployment.*` options of a network machine that reaches `host` at `address` (a proxy)."""
    return {
        "targetHost": address[0],
        "targetPort": address[1],
        "sshOptions": ssh_options(sandbox, host),
    }
