"""Fleets: many hosts at once, failures that stay their host's own unless the policy says
otherwise, interruption, and what a person or a program reads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import (
    activations,
    begun,
    current_system,
    deploy_json,
    err,
    hint,
    nixlift,
    write_network,
)

from nixlift_testbed import Sandbox

pytestmark = pytest.mark.integration


def machines(count: int, extra: dict[int, str] | None = None) -> str:
    extra = extra or {}
    return "".join(
        f"  h{i} = {{ pkgs, config, ... }}: "
        f'{{ environment.etc."n".text = "{i}"; {extra.get(i, "")} }};\n'
        for i in range(1, count + 1)
    )


def slow_build(seconds: int) -> str:
    return (
        'environment.systemPackages = [ (pkgs.runCommand "slow-${sb.nonce}" { } '
        f'"sleep {seconds}; mkdir -p $out") ];'
    )


# Each host its own broken package: a shared one would fail once per host, one after another.
FAILING_BUILD = (
    "environment.systemPackages = [ (pkgs.runCommand "
    '"broken-${sb.nonce}-${config.networking.hostName}" { } '
    '"echo broken >&2; exit 1") ];'
)


def test_twenty_hosts_one_unreachable_one_failing(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(20)
    asyncio.run(sb.host("h7").stop())
    net = write_network(tmp_path, sb, machines(20, {13: "standin.activation.exitCode = 4;"}))
    done, hosts = deploy_json(net, "--log-dir", tmp_path / "logs")
    assert done.returncode == 1
    assert len(hosts) == 20
    assert hosts["h7"]["status"] == "failed" and "cannot reach h7" in err(hosts["h7"])
    assert hint(hosts["h7"]) and "sshd running" in hint(hosts["h7"])
    assert hosts["h13"]["status"] == "rolled-back" and "exited with 4" in err(hosts["h13"])
    ok = [n for n, h in hosts.items() if h["status"] == "ok"]
    assert len(ok) == 18
    for name in ok:
        assert current_system(sb.host(name)) == hosts[name]["system"]
    # plain lines for a log: prefixed by host, and a summary naming the failures
    assert "[h7] FAILED" in done.stderr and "[h13] FAILED, ROLLED BACK" in done.stderr
    assert "18 of 20 hosts succeeded" in done.stderr
    log = (tmp_path / "logs" / "h13.log").read_text()
    assert "== activate switch" in log and "exited with 4" in log
    assert "== build" in (tmp_path / "logs" / "h1.log").read_text()


def test_skip_unreachable(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(3)
    asyncio.run(sb.host("h2").stop())
    net = write_network(tmp_path, sb, machines(3))
    done, hosts = deploy_json(net, "--skip-unreachable")
    assert done.returncode == 0, done.stderr
    assert hosts["h2"]["status"] == "skipped" and "cannot reach h2" in err(hosts["h2"])
    assert hosts["h1"]["status"] == hosts["h3"]["status"] == "ok"


def test_fail_fast_starts_nothing_after_the_first_failure(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(4)
    slow = slow_build(3)
    net = write_network(tmp_path, sb, machines(4, {1: FAILING_BUILD, 2: slow, 3: slow, 4: slow}))
    done, hosts = deploy_json(net, "--fail-fast")
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed"
    for name in ("h2", "h3", "h4"):
        assert hosts[name]["status"] == "skipped", hosts[name]
        assert "--fail-fast" in err(hosts[name])
        assert begun(sb.host(name)) == []  # never began an activation


def test_max_failures_count_and_percent(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(4)
    slow = slow_build(2)
    extra = {1: FAILING_BUILD, 2: FAILING_BUILD, 3: slow, 4: slow}
    net = write_network(tmp_path, sb, machines(4, extra))
    done, hosts = deploy_json(net, "--max-failures", "1")
    assert done.returncode == 1
    assert [hosts[n]["status"] for n in ("h1", "h2", "h3", "h4")] == [
        "failed",
        "failed",
        "skipped",
        "skipped",
    ]
    assert "stopped after 2 failed hosts (--max-failures 1)" in err(hosts["h3"])

    # 50% of 4 tolerates 2 failures: the others go on
    net = write_network(tmp_path / "again", sb, machines(4, extra))
    done, hosts = deploy_json(net, "--max-failures", "50%")
    assert done.returncode == 1
    assert hosts["h3"]["status"] == hosts["h4"]["status"] == "ok"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    bad = nixlift("deploy", net, "--max-failures", "lots", env={"TMPDIR": str(scratch)})
    assert bad.returncode == 2 and "--max-failures" in bad.stderr
    assert list(scratch.iterdir()) == []  # no GC roots' directory left behind


def test_tags_select_hosts(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(3)
    net = write_network(
        tmp_path,
        sb,
        machines(3, {1: 'deployment.tags = [ "web" ];', 3: 'deployment.tags = [ "web" "db" ];'}),
    )
    done, hosts = deploy_json(net, "--on", "@web", "--exclude", "@db")
    assert done.returncode == 0, done.stderr
    assert list(hosts) == ["h1"]
    assert activations(sb.host("h2")) == [] and activations(sb.host("h3")) == []
    empty = nixlift("deploy", net, "--on", "@nope")
    assert empty.returncode == 2 and "'@nope' matches no machine" in empty.stderr


def leftover_processes(sb: Sandbox) -> list[str]:
    """Local processes of ours still using the sandbox (its hosts themselves aside)."""
    host_pids = {h.pid for h in sb.hosts}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in host_pids:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(sb.directory) in cmdline + environ and not cmdline.startswith("unshare "):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_interrupt_mid_deploy_leaves_every_host_whole(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(20)
    slow = dict.fromkeys(range(1, 21), "standin.activation.sleepSeconds = 2;")
    net = write_network(tmp_path, sb, machines(20, slow))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nixlift",
            "deploy",
            str(net),
            "--parallel",
            "4",
            "--json",
            "--progress",
            "plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NIX_CONFIG": "substituters =\n"},
    )
    assert child.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        seen.append(line)
        if "activating: switch" in line:
            break
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, "".join(seen) + err
    assert "interrupted" in err
    results = {h["name"]: h for h in json.loads(out)["hosts"]}
    finished = 0
    for host in sb.hosts:
        # an activation that began also ended: nothing was cut off half way
        assert len(begun(host)) == len(activations(host)), host.name
        if activations(host):
            finished += 1
            assert current_system(host) == results[host.name]["system"]
            assert results[host.name]["status"] == "ok"
        else:
            assert current_system(host) is None
            assert results[host.name]["status"] == "skipped"
    assert 1 <= finished < 20
    assert leftover_processes(sb) == []


def test_exec_runs_everywhere_with_prefixed_output(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    net = write_network(tmp_path, sb, machines(3))
    done = nixlift("exec", net, "--", "hostname")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["[h1] h1", "[h2] h2", "[h3] h3"]
    shell = nixlift("exec", net, "--on", "h2", "--", "echo one | tr a-z A-Z")
    assert shell.stdout.splitlines() == ["[h2] ONE"]
    failing = nixlift("exec", net, "--", "sh", "-c", 'test "$(hostname)" != h3')
    assert failing.returncode == 1
    assert "[h3] exit status 1" in failing.stderr and "2 of 3 hosts succeeded" in failing.stderr


def test_ssh_runs_with_the_machines_settings(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(tmp_path, sb, machines(2))
    done = nixlift("ssh", "h2", net, "--", "hostname")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "h2"


def host_processes(sb: Sandbox, argv: list[str]) -> list[int]:
    """Processes running exactly `argv` inside the sandbox hosts (in their pid namespaces)."""
    namespaces = {os.readlink(f"/proc/{h.pid}/ns/pid_for_children") for h in sb.hosts}
    wanted = "\0".join(argv) + "\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            ns = os.readlink(entry / "ns" / "pid")
        except OSError:
            continue
        if cmdline == wanted and ns in namespaces:
            found.append(int(entry.name))
    return found


SLEEP = ["sleep", "417"]


def test_interrupting_exec_stops_the_remote_commands(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(tmp_path, sb, machines(2))
    child = subprocess.Popen(
        [sys.executable, "-m", "nixlift", "exec", str(net), "--", *SLEEP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while len(host_processes(sb, SLEEP)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(host_processes(sb, SLEEP)) == 2
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    deadline = time.monotonic() + 10
    while host_processes(sb, SLEEP) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_processes(sb, SLEEP) == []
    assert leftover_processes(sb) == []
