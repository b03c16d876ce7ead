"""A shaped link: sandbox hosts behind a slow uplink (a veth pair rate-limited with tc's tbf).

`up(directory, count, shaped="10mbit")` (`nixlift-sandbox up N --shaped 10mbit`) starts the
hosts in a network namespace of their own, `nixlift-sb-B` (B: the sandbox's first address
block), reached from the deployer only through a veth pair:

    deployer (this namespace)                        the hosts' namespace, nixlift-sb-B
    10.178.B.1  nlsbB-d ==== veth, RATE each way ==== nlsbB-h   h1 … hN  10.177.B.1 … .N
                                                                service  10.177.B.251

- The hosts' addresses, 10.177.B.0/24 per block, are local to their namespace (one `local`
  route on its `lo`), so every host's sshd listens on its own address there; this namespace
  routes the blocks into the veth. The ssh config and known_hosts name these addresses, so
  `ssh -F DIR/ssh_config h1` and a network's `sshOptions = [ "-F" … ]` go through the link.
- Both ends of the veth have a token bucket: `tc qdisc add dev … root tbf rate RATE burst …
  latency 50ms` (netem, which could add delay, is not in every kernel; `nixlift_testbed.proxy`
  adds latency). Traffic between the hosts (and to a service at `service_address`, e.g. a
  binary cache's HTTP server started with `serve_http`) stays on their side, unshaped: the
  hosts' LAN.
- The routes have `quickack` (as the sandbox's loopback range does): without it, delayed ACKs
  stall small writes on a link this short.
- `down` stops the hosts, ends every other process left in the namespace, deletes the veth
  (which takes its routes and queues with it) and the namespace. An `up` that claims a block
  first removes whatever a crashed run left under that block's names.

Measured on the 2-core machine this was written on (Linux veth, OpenSSH 9.2, Nix 2.8), with
`shaped="10mbit"`: a raw TCP stream through the link runs at ~9.6 Mbit/s; one host's copy of a
~20 MiB closure (`nix copy --to ssh-ng://`, incompressible data) takes ~18 s (~17 s is 20 MiB
at 10 Mbit/s); an SSH login costs what it costs on loopback (~50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixlift import proc
from nixlift.errors import CommandError, MissingProgramError
from nixlift_testbed.addresses import LINK_PREFIX, SERVICE_HOST, SHAPED_PREFIX
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.processes import process_alive, process_start

log = logging.getLogger("nixlift_testbed")

#: how long a packet may wait in a token bucket's queue (its size, at the rate)
QUEUE_LATENCY = "50ms"
_RATE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kmg]?)bit$")
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def rate_bits(rate: str) -> float:
    """Bits per second of a tc rate such as `10mbit`, `512kbit` (only `…bit` rates)."""
    match = _RATE.match(rate.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise SandboxError(
            f"{rate!r} is not a rate for a shaped link",
            hint="write it as tc does, in bits per second: e.g. 10mbit, 512kbit, 1gbit",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Link:
    """The shaped link of a sandbox: its namespace, veth ends, addresses and rate."""

    #: tc rate of each direction, e.g. "10mbit"
    rate: str
    #: the sandbox's address blocks (10.177.B.0/24 each, behind the link)
    blocks: tuple[int, ...]

    @property
    def block(self) -> int:
        return self.blocks[0]

    @property
    def netns(self) -> str:
        return f"nixlift-sb-{self.block}"

    @property
    def outside(self) -> str:
        """The veth end in the deployer's namespace."""
        return f"nlsb{self.block}-d"

    @property
    def inside(self) -> str:
        """The veth end in the hosts' namespace."""
        return f"nlsb{self.block}-h"

    @property
    def gateway(self) -> str:
        """The deployer's address on the link."""
        return f"{LINK_PREFIX}.{self.block}.1"

    @property
    def service_address(self) -> str:
        """An address on the hosts' side, beside them, for a service of theirs (a cache)."""
        return f"{SHAPED_PREFIX}.{self.block}.{SERVICE_HOST}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    def enter(self, argv: Sequence[str]) -> list[str]:
        """`argv` run in the hosts' network namespace (on their side of the link)."""
        return ["nsenter", f"--net={self.netns_path}", *argv]

    def to_json(self) -> dict[str, object]:
        return {"rate": self.rate, "blocks": list(self.blocks)}

    @classmethod
    def from_json(cls, data: object) -> Link | None:
        if not isinstance(data, dict):
            return None
        return cls(rate=str(data["rate"]), blocks=tuple(int(b) for b in data["blocks"]))


def _burst_bytes(rate: str) -> int:
    """The bucket's size: 10 ms at the rate, at least 16 kB (above a packet, and above what one
    timer tick lets through, so the rate is reached)."""
    return max(16_000, int(rate_bits(rate) / 8 / 100))


def _tbf(rate: str) -> list[str]:
    return ["root", "tbf", "rate", rate, "burst", str(_burst_bytes(rate)), "latency", QUEUE_LATENCY]


async def _ip(*argv: str, check: bool = True) -> proc.Completed:
    try:
        result = await proc.run(list(argv), check=False, timeout=30)
    except (CommandError, MissingProgramError) as e:
        raise SandboxError(
            f"`{proc.describe(argv)}` failed: {e}",
            hint="a shaped link needs iproute2 (ip, tc) and root",
        ) from e
    if check and result.returncode != 0:
        raise SandboxError(
            f"`{proc.describe(argv)}` failed: {result.stderr_tail(3)}",
            hint="a shaped link needs root, veth and the tbf queueing discipline (sch_tbf)",
        )
    return result


async def create(link: Link) -> None:
    """Make the namespace, the veth pair, the routes and the token buckets (after removing
    anything left under the same names)."""
    rate_bits(link.rate)
    await remove(link)
    ns = link.netns
    try:
        await _ip("ip", "netns", "add", ns)
        await _ip("ip", "link", "add", link.outside, "type", "veth", "peer", "name", link.inside)
        await _ip("ip", "link", "set", link.inside, "netns", ns)
        await _ip("ip", "addr", "add", f"{link.gateway}/32", "dev", link.outside)
        await _ip("ip", "link", "set", link.outside, "up")
        await _ip("ip", "-n", ns, "link", "set", "lo", "up")
        await _ip("ip", "-n", ns, "link", "set", link.inside, "up")
        await _ip("ip", "-n", ns, "route", "add", f"{link.gateway}/32", "dev", link.inside,
                  "quickack", "1")  # fmt: skip
        for block in link.blocks:
            net = f"{SHAPED_PREFIX}.{block}.0/24"
            await _ip("ip", "-n", ns, "route", "add", "local", net, "dev", "lo", "scope", "host",
                      "quickack", "1")  # fmt: skip
            await _ip("ip", "route", "add", net, "dev", link.outside, "src", link.gateway,
                      "quickack", "1")  # fmt: skip
        await shape(link)
    except BaseException:
        await remove(link)
        raise


async def shape(link: Link) -> None:
    """Set (or change) both directions' token buckets to the link's rate."""
    await _ip("tc", "qdisc", "replace", "dev", link.outside, *_tbf(link.rate))
    await _ip("tc", "-n", link.netns, "qdisc", "replace", "dev", link.inside, *_tbf(link.rate))


async def remove(link: Link) -> None:
    """End every process left in the hosts' namespace, delete the veth pair (its routes and
    queues go with it) and the namespace. Quiet when they are gone already."""
    if link.netns_path.exists():
        pids = await _ip("ip", "netns", "pids", link.netns, check=False)
        await _kill_all([int(p) for p in pids.stdout.split() if p.isdigit()])
    await _ip("ip", "link", "del", link.outside, check=False)
    if link.netns_path.exists():
        await _ip("ip", "netns", "del", link.netns, check=False)


async def _kill_all(pids: Sequence[int]) -> None:
    """SIGTERM, then SIGKILL to what is still alive 3 s later; return when all are gone."""
    starts = [(pid, process_start(pid)) for pid in pids]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in starts:
            if process_alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            starts = [(pid, start) for pid, start in starts if process_alive(pid, start)]
            if not starts:
                return
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# A service on the hosts' side of the link


@contextlib.contextmanager
def serve_http(
    link: Link, directory: Path, port: int = 8080, *, writable: bool = False
) -> Iterator[str]:
    """Serve `directory` over HTTP at `service_address:port`, on the hosts' side of the link
    (a `file://` binary cache, for hosts to substitute from); yields the URL. `writable`: PUT
    too, so that `nix copy --to URL` uploads into it across the link. `nixlift_testbed.
    httpserve` (Python's http.server); stopped when the block ends."""
    address = link.service_address
    argv = [sys.executable, "-m", "nixlift_testbed.httpserve", str(directory)]
    argv += ["--bind", address, "--port", str(port), *(["--writable"] if writable else [])]
    with running(link.enter(argv), (address, port)):
        yield f"http://{address}:{port}"


@contextlib.contextmanager
def running(argv: Sequence[str], address: tuple[str, int], timeout: float = 10) -> Iterator[None]:
    """Run a server (argv) until the block ends; enter the block once it accepts connections at
    `address` (reached from here). Stopped with SIGTERM, then SIGKILL, on every exit path."""
    argv = [str(a) for a in argv]
    server = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_listening(server, argv, address, timeout)
        yield
    finally:
        server.terminate()
        try:
            server.wait(3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def _wait_listening(
    server: subprocess.Popen[bytes], argv: list[str], address: tuple[str, int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise SandboxError(
                f"`{proc.describe(argv)}` exited with status {server.returncode}: "
                f"{err.strip()[-500:]}"
            )
        try:
            with socket.create_connection(address, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                where = f"{address[0]}:{address[1]}"
                raise SandboxError(f"`{proc.describe(argv)}` does not listen on {where}") from None
            time.sleep(0.05)
