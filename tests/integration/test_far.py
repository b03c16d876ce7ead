"""A host at a distance (50 ms round trips, through the test bed's delay proxy): the copy of a
system built before the deploy starts alongside the lock's call, and is stopped at once when
the host turns out to have the system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, deploy_json, nixlift, write_network

from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment

pytestmark = pytest.mark.integration

MACHINE = """
  h1 = { ... }: {
    deployment = builtins.fromJSON (builtins.readFile ./through-proxy.json);
    environment.etc."far".text = "far away";
  };
"""


def test_a_far_hosts_copy_overlaps_its_lock_and_stops_when_not_needed(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    net = write_network(tmp_path, sandbox, MACHINE)
    (tmp_path / "through-proxy.json").write_text("{}")  # the proxy's address comes later
    # built before the deploy (as by CI, or `nixlift build`): only such a system can start its
    # copy before the deploy's builds
    built = nixlift("build", net)
    assert built.returncode == 0, built.stderr
    proxy = DelayProxy((host.address, host.port), rtt=0.05)
    with in_thread(proxy) as running:
        (tmp_path / "through-proxy.json").write_text(
            json.dumps(deployment(sandbox, "h1", running.address))
        )
        first, hosts = deploy_json(net, "--debug")
        again, hosts_again = deploy_json(net, "--debug")

    assert first.returncode == 0, first.stderr
    h1 = hosts["h1"]
    assert (h1["status"], h1["copied"], h1["copy_tries"]) == ("ok", True, 1)
    assert current_system(host) == h1["system"]
    lines = first.stderr.splitlines()
    alongside = _index(lines, "h1: a slow link (")
    copy = _index(lines, "copy --no-check-sigs --to ssh-ng://")
    # the copy started while the lock's call was still going: before the host's sequence began
    # (its first line is the build's), and before the agent had even reached the host
    assert alongside < copy < _index(lines, "[h1] building")
    assert copy < _index(lines, "[h1] the agent is not on the host")
    assert "stopped" not in first.stderr

    # the host has the system now: the copy alongside the lock is stopped, nothing is copied
    assert again.returncode == 0, again.stderr
    assert hosts_again["h1"]["copied"] is False
    assert "h1 already has its system: the early copy is stopped" in again.stderr


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)
