"""--build-host and deployment.buildHost (nixos-rebuild's build host): evaluated here, built on
another sandbox host, copied from there to the target (directly, or through here when the build
host cannot reach the target); nothing of the system is built or stored here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import current_system, deploy_json, err, has_path, nixlift, write_network

from nixlift_testbed import Sandbox

pytestmark = pytest.mark.integration


def sshopts(sb: Sandbox) -> dict[str, str]:
    return {"NIX_SSHOPTS": f"-F {sb.ssh_config}"}


def test_built_on_the_build_host_and_copied_from_there(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { environment.etc."built".text = "elsewhere"; };
  h2 = { ... }: { };
""",
    )
    done, hosts = deploy_json(net, "--on", "h1", "--build-host", "h2", env=sshopts(sb))
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]
    assert current_system(sb.host("h1")) == system
    assert has_path(sb.host("h2"), system)  # built there
    assert not Path(system).exists()  # never here
    assert hosts["h1"]["copied_from"] == "directly from h2"


def test_through_here_when_the_build_host_cannot_reach_the_target(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    # The target's host keys are in a file under /root: a sandbox host has a /root of its own,
    # so from the build host the target's key is unknown and its copy is refused.
    known = Path("/root") / f".nixlift-test-known-{os.getpid()}"
    known.write_text(sb.known_hosts.read_text())
    try:
        net = write_network(
            tmp_path,
            sb,
            f"""
  h1 = {{ ... }}: {{
    deployment.buildHost = "h2";
    deployment.sshOptions = [ "-o" "UserKnownHostsFile={known}" ];
    environment.etc."built".text = "elsewhere, relayed";
  }};
""",
        )
        done, hosts = deploy_json(net, env=sshopts(sb))
    finally:
        known.unlink()
    assert done.returncode == 0, done.stderr
    assert hosts["h1"]["copied_from"] == "through here"
    assert "h2 cannot copy to it itself" in done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_a_failing_build_on_the_build_host_fails_its_machine(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { pkgs, ... }: {
    environment.systemPackages = [ (pkgs.runCommand "broken" { } "echo broke-there >&2; exit 3") ];
  };
""",
    )
    done, hosts = deploy_json(net, "--build-host", "h2", env=sshopts(sb))
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed" and "on h2 failed" in err(hosts["h1"])
    assert "broke-there" in done.stderr
    assert current_system(sb.host("h1")) is None


def test_a_build_host_that_is_not_a_host_is_refused(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, "  h1 = { ... }: { };")
    done = nixlift("build", net, "--build-host", "two words")
    assert done.returncode == 2 and "is not [USER@]HOST" in done.stderr
