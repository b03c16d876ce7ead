"""A copy's progress in bytes: what a deploy says it sent is the NAR size of the paths the host
lacked, read from this machine's store, whether the host lacked its whole closure (the total is
known from the start) or part of it (nix says how many paths, not which: no total)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import deploy_json, has_path, nixlift, write_network

from nixlift.ui.format import format_bytes

pytestmark = pytest.mark.integration

MIB = 2**20
#: random bytes: a copy that takes a moment (the sizes are read alongside it)
BLOB = 4 * MIB

MACHINE = """
  h1 = { pkgs, ... }:
    let blob = pkgs.runCommand "bytes-${sb.nonce}" { } ''
      $bb mkdir -p $out; $bb head -c @BLOB@ /dev/urandom > $out/blob
    '';
    in {
      environment.etc."blob".text = "${blob}";  # (the stand-in's systemPackages are not in it)
      environment.etc."variant".text = builtins.readFile ./variant.txt;
    };
""".replace("@BLOB@", str(BLOB))


def nar_sizes(path: str) -> dict[str, int]:
    out = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "-r", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {i["path"]: i["narSize"] for i in json.loads(out)}


def copy_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[h1] copy: ")]


def test_a_deploy_reports_the_nar_bytes_its_copy_sent(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    host = sandbox.host("h1")
    net = write_network(tmp_path, sandbox, MACHINE)

    # a host without any of the closure: every path is sent, a total known from the start
    (tmp_path / "variant.txt").write_text("one")
    built = nixlift("build", net, "--json")
    assert built.returncode == 0, built.stderr
    first = nar_sizes(json.loads(built.stdout)["hosts"][0]["system"])
    assert not any(has_path(host, p) for p in first)
    done, hosts = deploy_json(net, "--progress", "plain")
    assert done.returncode == 0, done.stderr
    total = sum(first.values())
    assert total > BLOB
    assert hosts["h1"]["copied_bytes"] == total
    n, size = len(first), format_bytes(total).split()
    assert copy_lines(done.stderr) == [
        f"[h1] copy: {n}/{n} paths, {size[0]}/{size[0]} {size[1]} (100%)"
    ]

    # another system: the host lacks some of its paths (not the blob); nix says how many only
    (tmp_path / "variant.txt").write_text("two")
    built = nixlift("build", net, "--json")
    assert built.returncode == 0, built.stderr
    second = nar_sizes(json.loads(built.stdout)["hosts"][0]["system"])
    missing = {p: s for p, s in second.items() if not has_path(host, p)}
    assert 0 < len(missing) < len(second)
    done, hosts = deploy_json(net, "--progress", "plain")
    assert done.returncode == 0, done.stderr
    sent = sum(missing.values())
    assert hosts["h1"]["copied_bytes"] == sent
    k = len(missing)
    assert copy_lines(done.stderr) == [f"[h1] copy: {k}/{k} paths (100%), {format_bytes(sent)}"]

    # nothing to copy: nothing said of bytes
    done, hosts = deploy_json(net, "--progress", "plain")
    assert done.returncode == 0, done.stderr
    assert (hosts["h1"]["copied"], hosts["h1"]["copied_bytes"]) == (False, None)
