"""The delay proxy (`nixlift_testbed.proxy`) over real sockets: latency added, a stream not
throttled, a cut after exactly N bytes once, counters, resets; then real ssh through it to a
sandbox host, and `nixlift-sandbox proxy`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from nixlift_testbed.background import in_thread
from nixlift_testbed.fixtures import SandboxFactory
from nixlift_testbed.proxy import DelayProxy, deployment, ssh_options

RTT = 0.05


@dataclass
class Sink:
    """A server that reads each connection to its end, then answers how many bytes it got
    (and an optional reply); it records what each connection received and how it ended."""

    reply: bytes = b""
    received: list[int] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        try:
            while data := await reader.read(65536):
                count += len(data)
            writer.write(self.reply or str(count).encode())
            await writer.drain()
            self.endings.append("eof")
        except ConnectionResetError:
            self.endings.append("reset")
        finally:
            self.received.append(count)
            writer.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def server(handler: object) -> AsyncIterator[tuple[str, int]]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    async with srv:
        host, port = srv.sockets[0].getsockname()[:2]
        yield str(host), int(port)


async def send_all(address: tuple[str, int], data: bytes) -> bytes:
    """Connect, send `data`, half-close, read the answer to its end."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()


def test_every_exchange_costs_one_round_trip_and_a_connection_one_more() -> None:
    async def main() -> float:
        async with server(echo) as upstream, DelayProxy(upstream, rtt=RTT) as proxy:
            begun = time.perf_counter()
            reader, writer = await asyncio.open_connection(*proxy.address)
            for _ in range(5):
                writer.write(b"ping")
                await writer.drain()
                assert await reader.readexactly(4) == b"ping"
            elapsed = time.perf_counter() - begun
            writer.close()
            return elapsed

    elapsed = asyncio.run(main())
    # 1 round trip to connect (TCP's handshake), then 1 per exchange
    assert 6 * RTT <= elapsed < 6 * RTT + 0.15, elapsed


def test_a_stream_is_delayed_not_throttled() -> None:
    data = os.urandom(8 * 2**20)

    async def main() -> tuple[bytes, float, Sink, DelayProxy]:
        sink = Sink()
        async with server(sink.serve) as upstream, DelayProxy(upstream, rtt=RTT) as proxy:
            begun = time.perf_counter()
            answer = await send_all(proxy.address, data)
            return answer, time.perf_counter() - begun, sink, proxy

    answer, elapsed, sink, proxy = asyncio.run(main())
    assert answer == str(len(data)).encode()
    # connect (1 RTT), the data one way (1/2), the answer back (1/2); 8 MiB add little
    assert 2 * RTT <= elapsed < 2 * RTT + 0.8, elapsed
    assert (proxy.stats.connections, proxy.stats.bytes_up) == (1, len(data))
    assert proxy.stats.bytes_down == len(answer)
    assert sink.endings == ["eof"]


def test_counters_and_half_close() -> None:
    async def main() -> tuple[bytes, DelayProxy]:
        sink = Sink(reply=b"r" * 678)
        async with server(sink.serve) as upstream, DelayProxy(upstream) as proxy:
            answer = await send_all(proxy.address, b"x" * 12345)
            await send_all(proxy.address, b"y" * 10)
            for _ in range(100):  # the proxy notices the ends a moment later
                if proxy.stats.open == 0:
                    break
                await asyncio.sleep(0.01)
            return answer, proxy

    answer, proxy = asyncio.run(main())
    assert answer == b"r" * 678
    stats = proxy.stats
    assert (stats.connections, stats.bytes_up, stats.bytes_down, stats.cuts) == (2, 12355, 1356, 0)
    assert [(c.bytes_up, c.bytes_down) for c in stats.per_connection] == [(12345, 678), (10, 678)]
    assert stats.open == 0


def test_the_first_connection_reaching_n_bytes_is_reset_after_exactly_n_and_only_it() -> None:
    data = os.urandom(2**20)
    cut = 100_000

    async def main() -> tuple[BaseException | bytes, bytes, bytes, Sink, DelayProxy]:
        sink = Sink()
        async with server(sink.serve) as upstream, DelayProxy(upstream, cut_after=cut) as proxy:
            small = await send_all(proxy.address, b"z" * 1000)  # below N: untouched
            try:
                first: BaseException | bytes = await send_all(proxy.address, data)
            except OSError as e:
                first = e
            again = await send_all(proxy.address, data)
            return first, small, again, sink, proxy

    first, small, again, sink, proxy = asyncio.run(main())
    assert isinstance(first, ConnectionResetError), first
    assert small == b"1000"
    assert again == str(len(data)).encode()
    # the server got exactly N bytes of the cut connection, then a reset (not an end of file)
    assert sink.received == [1000, cut, len(data)]
    assert sink.endings == ["eof", "reset", "eof"]
    stats = proxy.stats
    assert (stats.connections, stats.cuts) == (3, 1)
    assert [c.cut for c in stats.per_connection] == [False, True, False]
    assert stats.per_connection[1].total == cut


def test_cut_counts_both_directions_and_several_cuts() -> None:
    async def main() -> tuple[list[int], DelayProxy]:
        async with (
            server(echo) as upstream,
            DelayProxy(upstream, cut_after=3000, cuts=2) as proxy,
        ):
            got: list[int] = []
            for _ in range(3):
                reader, writer = await asyncio.open_connection(*proxy.address)
                count = 0
                try:
                    for _ in range(4):  # 4 exchanges of 1000 bytes each way: 8000 through in all
                        writer.write(b"e" * 1000)
                        await writer.drain()
                        count += len(await reader.readexactly(1000))
                except (OSError, asyncio.IncompleteReadError):
                    pass
                got.append(count)
                writer.close()
            return got, proxy

    got, proxy = asyncio.run(main())
    # 1000 up + 1000 back + 1000 up = 3000, then the reset: the second echo never comes back
    assert got == [1000, 1000, 4000]
    assert [c.total for c in proxy.stats.per_connection] == [3000, 3000, 8000]
    assert proxy.stats.cuts == 2


def test_an_unreachable_upstream_resets_the_client() -> None:
    async def main() -> BaseException | bytes:
        async with server(echo) as upstream:
            pass  # closed again: nothing listens there now
        async with DelayProxy(upstream) as proxy:
            try:
                return await send_all(proxy.address, b"hello")
            except OSError as e:
                return e

    result = asyncio.run(main())
    assert isinstance(result, ConnectionResetError) or result == b"", result


def test_in_a_thread_for_synchronous_code() -> None:
    async def main() -> None:
        async with server(echo) as upstream:
            proxy = DelayProxy(upstream, rtt=0.02)
            # the proxy's loop is another thread's; this loop keeps serving the echo server
            await asyncio.to_thread(use_in_thread, proxy)

    def use_in_thread(proxy: DelayProxy) -> None:
        import socket

        with in_thread(proxy) as running, socket.create_connection(running.address) as sock:
            sock.sendall(b"abc")
            assert sock.recv(3) == b"abc"
        assert running.stats.bytes_up == 3
        with pytest.raises(RuntimeError):
            _ = running.address  # stopped: no longer listening

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Real ssh to a sandbox host through the proxy


@pytest.mark.integration
def test_ssh_through_the_proxy_pays_the_handshakes_round_trips(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    with in_thread(DelayProxy((host.address, host.port), rtt=RTT)) as proxy:
        address, port = proxy.address
        argv = ["ssh", *ssh_options(sandbox, "h1"), "-p", str(port), f"root@{address}", "hostname"]
        times = []
        for _ in range(2):
            begun = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            times.append(time.perf_counter() - begun)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "h1"  # the host key check passed, under the alias
        assert proxy.stats.connections == 2
    # TCP (1), version and key exchange (2), new keys + service request (1), user auth: none,
    # key query, signature (3), session channel (1), command and exit status (1): 9 round
    # trips; at least 8 whatever OpenSSH overlaps
    assert min(times) >= 8 * RTT, times
    direct = time.perf_counter()
    subprocess.run(sandbox.ssh_argv("h1", "true"), check=True, timeout=30)
    assert time.perf_counter() - direct < min(times) - 5 * RTT


@pytest.mark.integration
def test_an_ssh_session_cut_midway_fails_and_the_retry_over_a_new_connection_succeeds(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    payload = os.urandom(2**20)
    with in_thread(DelayProxy((host.address, host.port), cut_after=300_000)) as proxy:
        address, port = proxy.address
        argv = ["ssh", *ssh_options(sandbox, "h1"), "-p", str(port), f"root@{address}"]
        argv += ["wc -c"]
        cut = subprocess.run(argv, input=payload, capture_output=True, timeout=30, check=False)
        retry = subprocess.run(argv, input=payload, capture_output=True, timeout=30, check=False)
        # ssh's own failure: the connection was reset (what ssh prints of it depends on where
        # the reset catches it: "Connection reset", "Broken pipe", or nothing at all)
        assert cut.returncode == 255, cut.stderr
        assert retry.returncode == 0, retry.stderr
        assert retry.stdout.strip() == str(len(payload)).encode()
        assert (proxy.stats.connections, proxy.stats.cuts) == (2, 1)
        assert proxy.stats.per_connection[0].total == 300_000


@pytest.mark.integration
def test_deployment_options_reach_the_host_through_the_proxy(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    with in_thread(DelayProxy((host.address, host.port))) as proxy:
        d = deployment(sandbox, "h1", proxy.address)
        assert (d["targetHost"], d["targetPort"]) == proxy.address
        options = d["sshOptions"]
        assert isinstance(options, list)
        argv = ["ssh", *options, "-p", str(d["targetPort"]), f"root@{d['targetHost']}", "true"]
        subprocess.run(argv, check=True, timeout=30)
        # without the alias, the key is looked up under the proxy's address: refused
        plain = ["ssh", "-F", str(sandbox.ssh_config), "-p", str(d["targetPort"])]
        refused = subprocess.run(
            [*plain, f"root@{d['targetHost']}", "true"], capture_output=True, text=True, check=False
        )
        assert refused.returncode == 255
        assert "host key" in refused.stderr.lower(), refused.stderr


@pytest.mark.integration
def test_the_proxy_command(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    command = [sys.executable, "-m", "nixlift_testbed", "proxy", "h1", "--rtt", "20"]
    command += ["--dir", str(sandbox.directory)]
    proxy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        address, _, port = proxy.stdout.readline().strip().rpartition(":")
        argv = ["ssh", *ssh_options(sandbox, "h1"), "-p", port, f"root@{address}", "hostname"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert (done.returncode, done.stdout.strip()) == (0, "h1"), done.stderr
    finally:
        proxy.send_signal(signal.SIGTERM)
        _, err = proxy.communicate(timeout=10)
    assert proxy.returncode == 0, err
    assert "try: ssh -F" in err
    assert "proxy stopped: 1 connection(s)" in err


def test_the_proxy_command_refuses_a_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    from nixlift_testbed import cli

    assert cli.main(["proxy", "nowhere:port"]) == 1
    assert "is not ADDRESS:PORT" in capsys.readouterr().err
