"""Machines keep their own systems; an aarch64 machine (the Raspberry Pi case) is refused before
any work when this machine cannot build it, and builds through emulation and deploys when it can."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import activations, current_system, nixlift, write_network

from nixlift.nix.platforms import binfmt_systems

pytestmark = pytest.mark.integration

BUSYBOX = Path(
    os.environ.get("NIXLIFT_STANDIN_BUSYBOX_DIR", "/usr/libexec/nixlift-standin"),
    "aarch64-linux",
    "busybox",
)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_each_machine_evaluates_to_its_own_system(tmp_path: Path) -> None:
    net = write_network(
        tmp_path,
        None,
        """
  native = { ... }: { };
  pi3 = { ... }: {
    nixpkgs.localSystem = { system = "aarch64-linux"; config = "aarch64-unknown-linux-gnu"; };
  };
  pi4 = { ... }: { nixpkgs.hostPlatform = "aarch64-linux"; };
  old = { ... }: { nixpkgs.system = "armv7l-linux"; };
""",
    )
    done = nixlift("eval", net, "--json")
    assert done.returncode == 0, done.stderr
    systems = {m["name"]: m["system"] for m in json.loads(done.stdout)["machines"]}
    native = json.loads(nixlift("eval", net, "--json", "--on", "native").stdout)
    assert systems == {
        "native": native["machines"][0]["system"],
        "pi3": "aarch64-linux",
        "pi4": "aarch64-linux",
        "old": "armv7l-linux",
    }
    drvs = json.loads(done.stdout)["machines"]
    assert all(m["drv_path"].endswith(".drv") and Path(m["drv_path"]).exists() for m in drvs)


def pi_network(directory: Path, sb_config: Path | None = None) -> Path:
    shutil.copy(EXAMPLES / "pi-configuration.nix", directory / "pi-configuration.nix")
    sb = None
    if sb_config is not None:
        from nixlift_testbed import load

        sb = load(sb_config)
    return write_network(
        directory,
        sb,
        """
  pi3 = { config, pkgs, lib, ... }: {
    deployment.targetHost = "h1";
    nixpkgs.localSystem = {
      system = "aarch64-linux";
      config = "aarch64-unknown-linux-gnu";
    };
    imports = [ ./pi-configuration.nix ];
  };
""",
    )


def test_aarch64_is_refused_before_any_work_without_emulation(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = pi_network(tmp_path, sb.directory)
    done = nixlift("deploy", net, "--option", "extra-platforms", "")
    assert done.returncode == 2
    assert "machine 'pi3' is aarch64-linux" in done.stderr
    assert "boot.binfmt.emulatedSystems" in done.stderr and "--builders" in done.stderr
    assert "buildOnTarget" in done.stderr
    assert "building" not in done.stderr  # refused before any build started
    assert activations(sb.host("h1")) == []


@pytest.mark.skipif(
    not BUSYBOX.exists(),
    reason=f"no aarch64 busybox at {BUSYBOX}: scripts/install.sh puts it there",
)
@pytest.mark.skipif(
    "aarch64-linux" not in binfmt_systems(),
    reason="no binfmt handler for aarch64 (qemu-user-static + binfmt_misc)",
)
def test_aarch64_builds_through_emulation_and_deploys(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = pi_network(tmp_path, sb.directory)
    done = nixlift("deploy", net, "--option", "extra-platforms", "aarch64-linux", "--json")
    assert done.returncode == 0, done.stderr
    system = json.loads(done.stdout)["hosts"][0]["system"]
    assert Path(system, "system").read_text().strip() == "aarch64-linux"
    # the Pi's own configuration is in it
    assert Path(system, "sw/bin/hello").exists()
    assert current_system(sb.host("h1")) == system
    assert [a["goal"] for a in activations(sb.host("h1"))] == ["switch"]
