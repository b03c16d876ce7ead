"""Sandbox hosts behind a shaped link (`up(…, shaped=RATE)`, `nixlift_testbed.link`): real
namespaces, veth pairs and token buckets; transfers over real ssh and HTTP are timed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nixlift_testbed import Sandbox, SandboxError, down, up
from nixlift_testbed.fixtures import SandboxFactory
from nixlift_testbed.hosts import STATE_FILE
from nixlift_testbed.link import Link, rate_bits, serve_http

RATE = "8mbit"
#: bytes each timed transfer moves: 1.5 s at 8 Mbit/s
SIZE = 1_500_000


def seconds_at(rate: str, size: int) -> float:
    return size * 8 / rate_bits(rate)


def leftovers(link: Link) -> list[str]:
    """What of the link is still there: namespace, veth, routes, queues."""
    found = []
    if link.netns_path.exists():
        found.append(f"namespace {link.netns}")
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True)
    found += [
        f"link {line.split()[0]}" for line in links.stdout.splitlines() if link.outside in line
    ]
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    found += [f"route {line}" for line in routes.splitlines() if link.outside in line]
    qdiscs = subprocess.run(["tc", "qdisc"], capture_output=True, text=True, check=True).stdout
    found += [f"qdisc {line}" for line in qdiscs.splitlines() if link.outside in line]
    return found


def timed_ssh(sandbox: Sandbox, host: str, command: str, data: bytes = b"") -> tuple[float, bytes]:
    begun = time.perf_counter()
    done = subprocess.run(
        sandbox.ssh_argv(host, command), input=data, capture_output=True, timeout=60, check=True
    )
    return time.perf_counter() - begun, done.stdout


def test_rates() -> None:
    assert rate_bits("10mbit") == 10e6
    assert rate_bits("512kbit") == 512e3
    assert rate_bits("1.5Gbit") == 1.5e9
    for bad in ("10mbps", "fast", "0mbit", "-1mbit", "10 mbit"):
        with pytest.raises(SandboxError, match="not a rate"):
            rate_bits(bad)


def test_names_fit_the_kernels_limits() -> None:
    link = Link("10mbit", (250, 3))
    assert (link.netns, link.outside, link.inside) == ("nixlift-sb-250", "nlsb250-d", "nlsb250-h")
    assert max(len(link.outside), len(link.inside)) <= 15  # IFNAMSIZ - 1
    assert (link.gateway, link.service_address) == ("10.178.250.1", "10.177.250.251")
    assert Link.from_json(link.to_json()) == link
    assert Link.from_json(None) is None


@pytest.mark.integration
def test_hosts_behind_the_link_are_reached_at_its_rate_both_ways(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(2, shaped=RATE)
    link = sandbox.link
    assert link is not None and link.blocks == sandbox.blocks
    block = sandbox.blocks[0]
    assert [h.address for h in sandbox.hosts] == [f"10.177.{block}.1", f"10.177.{block}.2"]
    # each host listens in the link's namespace, not in the deployer's
    assert timed_ssh(sandbox, "h2", "hostname")[1] == b"h2\n"
    hosts_ns = [os.readlink(f"/proc/{h.pid}/ns/net") for h in sandbox.hosts]
    assert hosts_ns[0] == hosts_ns[1] != os.readlink("/proc/self/ns/net")

    floor = seconds_at(RATE, SIZE)
    up_time, counted = timed_ssh(sandbox, "h1", "wc -c", b"\xa5" * SIZE)
    assert counted.strip() == str(SIZE).encode()
    down_time, data = timed_ssh(sandbox, "h1", f"head -c {SIZE} /dev/zero")
    assert len(data) == SIZE
    for seconds in (up_time, down_time):  # a burst of 16 kB may come early; ssh adds ~5 %
        assert 0.9 * floor <= seconds <= 1.6 * floor + 0.5, (up_time, down_time, floor)

    state = json.loads((sandbox.directory / STATE_FILE).read_text())
    assert state["link"] == {"rate": RATE, "blocks": list(sandbox.blocks)}


@pytest.mark.integration
def test_a_service_beside_the_hosts_is_fast_for_them_and_shaped_for_the_deployer(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1, shaped=RATE)
    link = sandbox.link
    assert link is not None
    (tmp_path / "file").write_bytes(b"\x17" * SIZE)
    fetch = (
        "import sys, urllib.request; "
        "sys.stdout.write(str(len(urllib.request.urlopen(sys.argv[1]).read())))"
    )
    with serve_http(link, tmp_path, port=8181) as url:
        assert url == f"http://{link.service_address}:8181"
        times = {}
        for side, argv in [
            ("deployer", ["python3", "-c", fetch, url + "/file"]),
            ("hosts", link.enter(["python3", "-c", fetch, url + "/file"])),
        ]:
            begun = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
            times[side] = time.perf_counter() - begun
            assert done.stdout == str(SIZE)
        # and from inside a host: its LAN
        inside = timed_ssh(sandbox, "h1", f"python3 -c '{fetch}' {url}/file")[1]
        assert inside == str(SIZE).encode()
    floor = seconds_at(RATE, SIZE)
    assert times["deployer"] >= 0.9 * floor, times
    assert times["hosts"] < 0.5 * floor, times


@pytest.mark.integration
def test_up_again_keeps_changes_and_removes_the_link_and_down_leaves_nothing(
    sandbox_factory: SandboxFactory,
) -> None:
    first = sandbox_factory(1, shaped="10mbit")
    link = first.link
    assert link is not None
    same = asyncio.run(up(first.directory, 1, shaped="10mbit"))
    assert same.hosts == first.hosts  # kept: same pid, same address
    faster = asyncio.run(up(first.directory, 2, shaped="50mbit"))
    assert faster.hosts[0] == first.hosts[0]
    qdisc = subprocess.run(
        ["tc", "qdisc", "show", "dev", link.outside], capture_output=True, text=True, check=True
    )
    assert "rate 50Mbit" in qdisc.stdout
    assert timed_ssh(faster, "h2", "hostname")[1] == b"h2\n"

    plain = asyncio.run(up(first.directory, 2))
    assert plain.link is None
    assert not first.hosts[0].running()  # it was in the link's namespace: started again
    assert plain.hosts[0].address.startswith("127.77.")
    assert timed_ssh(plain, "h1", "hostname")[1] == b"h1\n"
    assert leftovers(link) == []

    shaped = asyncio.run(up(first.directory, 2, shaped="10mbit"))
    assert shaped.link == link
    asyncio.run(down(first.directory))
    assert not any(h.running() for h in shaped.hosts)
    assert leftovers(link) == []


@pytest.mark.integration
def test_what_a_crashed_run_left_goes_with_the_next_up_of_its_block(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(1, shaped="10mbit")
    link = sandbox.link
    assert link is not None
    # a run that crashed: its state lost the link, its hosts are gone, the link is not
    state = sandbox.directory / STATE_FILE
    data = json.loads(state.read_text())
    data["link"] = None
    state.write_text(json.dumps(data))
    asyncio.run(down(sandbox.directory))
    assert leftovers(link) != []
    again = asyncio.run(up(sandbox.directory, 1))
    assert again.blocks == sandbox.blocks
    assert leftovers(link) == []


@pytest.mark.integration
def test_the_up_command_takes_a_rate(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    command = [sys.executable, "-m", "nixlift_testbed"]
    try:
        done = subprocess.run(
            [*command, "up", "1", "--shaped", "20mbit", "--dir", str(directory)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "behind a 20mbit link" in done.stderr
        bad = subprocess.run(
            [*command, "up", "1", "--shaped", "fast", "--dir", str(tmp_path / "other")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 1
        assert "'fast' is not a rate" in bad.stderr
    finally:
        asyncio.run(down(directory, purge=True))
