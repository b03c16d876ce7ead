"""A deploy opens its hosts' SSH connections while the network is still being evaluated: the
evaluation says the machines' deployment options before it evaluates any system, and the
handshakes go on meanwhile. Shown with an evaluation held open by a FIFO the machine's
configuration reads: the host's connection is up before the evaluation can end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, nixlift, write_network

from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment

pytestmark = pytest.mark.integration

GATED = """
  h1 = { ... }: {
    deployment = builtins.fromJSON (builtins.readFile ./through-proxy.json);
    # a FIFO: the evaluation of the system waits here until the test writes to it
    environment.etc."gate".text = builtins.readFile ./gate;
  };
"""

BROKEN = """
  h1 = { ... }: {
    environment.etc."broken".text = throw "nixlift-test: this system does not evaluate";
  };
"""

_MASTER = re.compile(r"start: ssh -M .*ControlPath=(\S+)")


def test_the_connection_is_up_while_the_evaluation_still_runs(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    net = write_network(tmp_path, sandbox, GATED)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proxy = DelayProxy((host.address, host.port))
    with in_thread(proxy) as running:
        (tmp_path / "through-proxy.json").write_text(
            json.dumps(deployment(sandbox, "h1", running.address))
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "nixlift", "--debug", "deploy", str(net), "push"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NIX_CONFIG": "substituters =\n"},
        )
        lines: list[str] = []
        seen = threading.Event()

        def read() -> None:
            assert child.stderr is not None
            for line in child.stderr:
                lines.append(line)
                if _MASTER.search(line):
                    seen.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert seen.wait(30), "".join(lines)
            socket = Path(next(m[1] for line in lines if (m := _MASTER.search(line))))
            deadline = time.monotonic() + 30
            while not socket.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            # logged in, while the evaluation cannot have ended: it is still reading the FIFO
            assert socket.exists(), "".join(lines)
            assert child.poll() is None
            assert not any("push: " in line for line in lines)  # the deploy has not begun
        finally:
            with open(gate, "w") as opened:  # the evaluation goes on
                opened.write("open")
        assert child.wait(120) == 0, "".join(lines)
        reader.join(10)
        connections = running.stats.connections

    text = "".join(lines)
    assert "h1: connecting while the network is evaluated" in text
    assert "the early connection is not the one needed" not in text
    # the deploy went on over the connection opened during the evaluation: no second login
    assert connections == 1, text
    assert "nixliftHosts" not in text  # nixlift's own announcement is not said to people
    # one directory of control sockets for the whole deploy, gone afterwards
    assert not socket.parent.exists()
    assert current_system(host) is None  # a push: copied, nothing activated
    assert "1 of 1 hosts succeeded" in text


def test_an_evaluation_that_fails_leaves_the_hosts_untouched(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    net = write_network(tmp_path, sandbox, BROKEN)
    done = nixlift("--debug", "deploy", net)
    assert done.returncode == 2, done.stderr
    assert "this system does not evaluate" in done.stderr
    # the connection was opened (and closed again); nothing ran there
    assert "h1: connecting while the network is evaluated" in done.stderr
    assert "nixliftHosts" not in done.stderr  # the announcement is not part of the error
    assert not any(host.path("/run/nixlift").glob("agent-*"))
    assert current_system(host) is None
    for socket in _MASTER.findall(done.stderr):
        assert not Path(socket).parent.exists()


def test_with_confirm_or_a_sudo_password_nothing_connects_early(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    net = write_network(tmp_path, sandbox, BROKEN)
    for flags in (["--confirm", "--yes"], ["--ask-sudo-password"]):
        done = nixlift("--debug", "deploy", net, *flags)
        assert done.returncode == 2, done.stderr
        assert "this system does not evaluate" in done.stderr
        assert "connecting while the network is evaluated" not in done.stderr


PLAIN = "  h1 = { ... }: { };"
#: an evaluation that waits on a FIFO nobody opens
WAITING = '  h1 = { ... }: { environment.etc."gate".text = builtins.readFile ./gate; };'


def _still_running(marker: str) -> list[str]:
    """Processes whose command line contains `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker in f.read().decode(errors="replace"):
                    found.append(pid)
        except OSError:
            continue  # gone meanwhile, or not a process
    return found


def test_the_evaluation_starts_before_the_event_loop(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """A deploy of a network named by files starts nix before it imports asyncio and the
    deploy's modules, and takes that evaluation over once its event loop runs."""
    sandbox = sandbox_factory(1)
    net = write_network(tmp_path, sandbox, PLAIN)
    done = nixlift("--debug", "deploy", net)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    early = [i for i, line in enumerate(lines) if line.startswith("nixlift: start early: ")]
    loop = [i for i, line in enumerate(lines) if "Using selector" in line]
    assert len(early) == 1 and "nix-instantiate" in lines[early[0]], done.stderr
    assert loop and early[0] < loop[0], done.stderr
    taken = [line for line in lines if "(started early): nix-instantiate" in line]
    assert len(taken) == 1, done.stderr
    assert "not used" not in done.stderr
    assert sum("nix-instantiate" in line and " run" in line for line in lines) == 1


def test_a_deploy_refused_before_its_evaluation_stops_the_one_started(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    net = write_network(tmp_path, sandbox, WAITING)
    os.mkfifo(tmp_path / "gate")
    # --confirm asks on a terminal, and there is none: refused before the evaluation
    done = nixlift("--debug", "deploy", net, "--confirm")
    assert done.returncode == 2, done.stderr
    assert "standard input is not a terminal" in done.stderr
    assert "started early and not used: stopped" in done.stderr
    assert _still_running(str(net)) == []
