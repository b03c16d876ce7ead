"""Progress that is true for the host it names: one nix command builds every machine's system,
yet each host's lines, counters and log file show its own builds, and a build several systems
share is shown once, as shared."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import STANDIN, nixlift, write_network

from nixlift.nix.drvgraph import owners

pytestmark = pytest.mark.integration


def slow_own_builds(count: int, seconds: int = 1) -> str:
    """Machines h1…hN, each with a slow build of its own and one slow build they all share."""
    nonce = uuid.uuid4().hex[:8]
    shared = f'(pkgs.runCommand "common-{nonce}" {{ }} "echo common step; sleep 1; mkdir $out")'
    return "".join(
        f"  h{i} = {{ pkgs, ... }}: {{ environment.systemPackages = [ {shared} "
        f'(pkgs.runCommand "slow-h{i}-{nonce}" {{ }} '
        f'"for s in 1 2; do echo h{i} step $s; sleep {seconds}; done; mkdir $out") ]; }};\n'
        for i in range(1, count + 1)
    )


def test_each_hosts_lines_and_log_show_its_own_build(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    net = write_network(tmp_path, sb, slow_own_builds(3))
    logs = tmp_path / "logs"
    done = nixlift("-v", "build", net, "--log-dir", logs, "--progress", "plain")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    for i in (1, 2, 3):
        own = f"h{i} step"
        others = [f"h{j} step" for j in (1, 2, 3) if j != i]
        mine = [line for line in lines if line.startswith(f"[h{i}]")]
        assert any(own in line for line in mine), done.stderr
        assert not any(o in line for line in mine for o in others), done.stderr
        log = (logs / f"h{i}.log").read_text()
        assert own in log and not any(o in log for o in others), log
        assert f"slow-h{i}-" in log and not any(f"slow-h{j}-" in log for j in (1, 2, 3) if j != i)
        # the shared build is in every host's log, marked, and in its counter
        assert "(shared) common step" in log
        # its own builds (its slow one, the shared one, its etc files, its system…) counted:
        # never more than its own total, which is the same whichever host builds first
        counts = [line.split()[-2] for line in mine if line.endswith(" builds")]
        totals = {c.split("/")[1] for c in counts}
        assert len(totals) == 1 and int(totals.pop()) >= 4, mine
        assert counts[-1].split("/")[0] == counts[-1].split("/")[1], mine
    # the shared build's lines are printed once, naming every host
    assert sum("common step" in line for line in lines) == 1
    assert any(line.startswith("[shared: h1 h2 h3] | common step") for line in lines)
    assert not any("0/0" in line for line in lines)


def test_owners_of_derivations_from_the_store(tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    expr = tmp_path / "drvs.nix"
    expr.write_text(
        f"""
let
  pkgs = import {STANDIN} {{ }};
  built = pkgs.runCommand "built-{nonce}" {{ }} "mkdir $out";
  shared = pkgs.runCommand "shared-{nonce}" {{ inherit built; }} "mkdir $out";
  top = n: pkgs.runCommand "top-${{n}}-{nonce}" {{ inherit shared; }} "mkdir $out";
in {{ inherit built; a = top "a"; b = top "b"; }}
"""
    )

    def drv(attr: str) -> str:
        out = subprocess.run(
            ["nix-instantiate", str(expr), "-A", attr],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    a, b, built = drv("a"), drv("b"), drv("built")
    subprocess.run(["nix-store", "--realise", built], capture_output=True, check=True)
    found = owners({"a": a, "b": b})
    assert found.of(a) == {"a"} and found.of(b) == {"b"}
    (shared,) = (d for d, m in found.by_drv.items() if m == {"a", "b"})
    assert "shared-" in shared
    assert found.of(built) == frozenset()  # already built: nothing below it is walked
    assert found.counts == {"a": 2, "b": 2}
    subprocess.run(["nix-store", "--realise", a], capture_output=True, check=True)
    assert owners({"a": a, "b": b}).counts == {"a": 0, "b": 1}
