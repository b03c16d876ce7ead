"""A copy whose connection is cut midway (a Wi-Fi drop, a middlebox's reset) is tried again over
a new connection, and what had arrived before the cut is not sent again.

The host is reached through the test bed's delay proxy, told to reset the first connection
that carries N bytes; N falls in the middle of the closure's second large path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, deploy_json, has_path, nixlift, write_network

from nixlift_testbed.background import in_thread
from nixlift_testbed.proxy import DelayProxy, deployment

pytestmark = pytest.mark.integration

MIB = 2**20
#: sizes of the two large paths. Random bytes: whatever ssh or nix might compress, the bytes
#: through the proxy stay close to the paths' own size.
FIRST = 1 * MIB
SECOND = 12 * MIB
#: where the cut falls in the second path. Well past its start: the host's nix-daemon lags
#: behind what the proxy forwarded by what sits in socket buffers and ssh's channel window (MiBs
#: on loopback), and what it had not read when the reset came is lost with the connection.
INTO_SECOND = 8 * MIB

# `second` names `first` in its contents, so nix counts `first` among its references and copies
# it first: the cut, in the middle of `second`, comes after `first` has landed.
MACHINE = """
  h1 = { pkgs, ... }:
    let
      first = pkgs.runCommand "cut-first-${sb.nonce}" { } ''
        $bb mkdir -p $out; $bb head -c @FIRST@ /dev/urandom > $out/blob
      '';
      second = pkgs.runCommand "cut-second-${sb.nonce}" { } ''
        $bb mkdir -p $out; $bb head -c @SECOND@ /dev/urandom > $out/blob
        echo ${first} > $out/needs
      '';
    in {
      deployment = builtins.fromJSON (builtins.readFile ./through-proxy.json);
      environment.systemPackages = [ second ];
      environment.etc."copy-retry".text = "${second}";
    };
""".replace("@FIRST@", str(FIRST)).replace("@SECOND@", str(SECOND))


# (at 60 ms the handshake is slow enough that the copy starts alongside the lock's call, and
# the cut lands in that early copy)
@pytest.mark.parametrize("rtt", [0.0, 0.06], ids=["near", "far"])
def test_a_copy_cut_midway_is_retried_over_a_new_connection_and_keeps_what_arrived(
    sandbox_factory: SandboxFactory, tmp_path: Path, rtt: float
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    net = write_network(tmp_path, sandbox, MACHINE)
    (tmp_path / "through-proxy.json").write_text("{}")  # the proxy's address comes later
    # built first: the build must not be what the cut lands in, and the system's paths are known
    built = nixlift("build", net, "--json")
    assert built.returncode == 0, built.stderr
    system = json.loads(built.stdout)["hosts"][0]["system"]
    first, second = _closure_path(system, "cut-first-"), _closure_path(system, "cut-second-")
    before_cut = FIRST + INTO_SECOND

    proxy = DelayProxy((host.address, host.port), rtt=rtt, cut_after=before_cut)
    with in_thread(proxy) as running:
        (tmp_path / "through-proxy.json").write_text(
            json.dumps(deployment(sandbox, "h1", running.address))
        )
        done, hosts = deploy_json(net)
        stats = running.stats

    assert done.returncode == 0, done.stderr
    h1 = hosts["h1"]
    assert (h1["status"], h1["system"], h1["copied"]) == ("ok", system, True)
    assert h1["copy_tries"] == 2, h1
    # the bytes its last try sent: the second path and the rest, not the first, which had landed
    assert SECOND < h1["copied_bytes"] < SECOND + FIRST // 2, h1
    assert "the copy's connection was cut; trying again over a new connection" in done.stderr
    assert current_system(host) == system
    # The cut took the lock's connection too (the host freed the lock): retaken before the
    # activation, and the history is written under it.
    assert "could not record" not in done.stderr
    records = (host.read_text("/nix/var/nixlift/history.jsonl") or "").splitlines()
    assert [json.loads(r)["system"] for r in records] == [system]

    assert stats.cuts == 1, stats.summary()
    cut = next(i for i, c in enumerate(stats.per_connection) if c.cut)
    assert stats.per_connection[cut].total == before_cut
    # What went up after the cut: the second path again (it had not been registered), the
    # rest of the closure, activation; not the first path, which had landed.
    after = sum(c.bytes_up for c in stats.per_connection[cut + 1 :])
    assert SECOND <= after < SECOND + FIRST // 2, stats.summary()
    assert has_path(host, first) and has_path(host, second)
    # (Registration times on the host cannot tell: nix sends each path's time from here.)


def _closure_path(system: str, prefix: str) -> str:
    closure = subprocess.run(
        ["nix-store", "-qR", system], capture_output=True, text=True, check=True
    ).stdout.split()
    (found,) = [p for p in closure if Path(p).name.split("-", 1)[1].startswith(prefix)]
    return found
