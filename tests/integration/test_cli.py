"""The CLI as a new user meets it: the seed's Raspberry Pi file, the sandbox commands, info,
--keep-result and a missing program."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import STANDIN, activations, current_system, err, hint, nixlift, profile_system

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def native_system() -> str:
    return {"x86_64": "x86_64-linux", "aarch64": "aarch64-linux"}[platform.machine()]


def test_the_seed_network_file_with_create_and_deploy_d(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """examples/rpi.nix, unchanged but for the address, port and (so it builds natively) the
    system; how to reach the sandbox comes from a second file, merged in order."""
    sb = sandbox_factory(1)
    host = sb.hosts[0]
    text = (EXAMPLES / "rpi.nix").read_text()
    text = text.replace(
        '"192.168.1.x";', f'"{host.address}";\n    deployment.targetPort = {host.port};'
    )
    text = text.replace('"aarch64-linux"', f'"{native_system()}"')
    text = text.replace('"aarch64-unknown-linux-gnu"', '"x86_64-unknown-linux-gnu"')
    (tmp_path / "rpi.nix").write_text(text)
    (tmp_path / "pi-configuration.nix").write_text((EXAMPLES / "pi-configuration.nix").read_text())
    (tmp_path / "sandbox.json").write_text(
        json.dumps({"sshConfig": str(sb.ssh_config), "nixpkgs": str(STANDIN)})
    )
    (tmp_path / "reach-sandbox.nix").write_text(
        "let sb = builtins.fromJSON (builtins.readFile ./sandbox.json); in {\n"
        "  network.nixpkgs = sb.nixpkgs;\n"
        '  defaults.deployment.sshOptions = [ "-F" sb.sshConfig ];\n}\n'
    )
    env = {"NIXLIFT_REGISTRY": str(tmp_path / "registry.json")}

    created = nixlift(
        "create", "./rpi.nix", "./reach-sandbox.nix", "-d", "rpi", cwd=tmp_path, env=env
    )
    assert created.returncode == 0, created.stderr
    before = nixlift("info", "-d", "rpi", "--json", env=env)
    assert json.loads(before.stdout)["hosts"][0]["state"] == "not-deployed"

    done = nixlift("deploy", "-d", "rpi", env=env)
    assert done.returncode == 0, done.stderr
    assert "[pi3]" in done.stderr and "1 of 1 hosts succeeded" in done.stderr
    info = nixlift("info", "-d", "rpi", "--json", env=env)
    row = json.loads(info.stdout)["hosts"][0]
    assert row["state"] == "up-to-date"
    assert row["target"] == f"root@{host.address}:{host.port}"
    assert current_system(host) == row["out_path"] == profile_system(host)
    assert Path(row["out_path"], "etc/hostname").read_text().strip() == "pi3"


def sandbox_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`nixlift-sandbox ARGS…` (the test bed's command), in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "nixlift_testbed", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sandbox_commands_and_the_demo_network(tmp_path: Path) -> None:
    directory = tmp_path / "sb"
    up = sandbox_command("up", "2", "--dir", directory)
    try:
        assert up.returncode == 0, up.stderr
        network = Path(up.stdout.strip())
        assert network == directory / "network.nix"
        assert f"try: nixlift deploy {network}" in up.stderr
        status = sandbox_command("status", "--dir", directory, "--json")
        rows = json.loads(status.stdout)
        assert [r["name"] for r in rows] == ["h1", "h2"]
        assert all(r["running"] and r["currentSystem"] is None for r in rows)

        done = nixlift("deploy", network)
        assert done.returncode == 0, done.stderr
        rows = json.loads(sandbox_command("status", "--dir", directory, "--json").stdout)
        assert all(
            r["currentSystem"].endswith("-nixos-system-" + r["name"] + "-24.05.standin")
            for r in rows
        )
        plain = sandbox_command("status", "--dir", directory)
        assert plain.returncode == 0 and plain.stdout.startswith("h1  127.77.")
    finally:
        down = sandbox_command("down", "--dir", directory, "--purge")
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    # errors are reported as nixlift's: what failed, then what to do
    gone = sandbox_command("status", "--dir", directory)
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"error: there is no sandbox in {directory}\n")
    assert "hint: start one with `nixlift-sandbox up N`" in gone.stderr
    # nixlift itself has no sandbox command any more
    assert nixlift("sandbox", "status").returncode == 2


def test_info_reports_an_unreachable_host(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    from netkit import write_network

    sb = sandbox_factory(1)
    net = write_network(
        tmp_path,
        sb,
        "  h1 = { ... }: { };\n  gone = { ... }: { "
        'deployment.targetHost = "127.0.0.1"; '
        "deployment.targetPort = 1; };",
    )
    info = nixlift("info", net, "--json")
    assert info.returncode == 1
    rows = {r["name"]: r for r in json.loads(info.stdout)["hosts"]}
    assert rows["h1"]["state"] == "not-deployed"
    assert rows["gone"]["state"] == "unreachable"
    assert "cannot reach gone (root@127.0.0.1:1)" in err(rows["gone"])
    assert "sshd running" in hint(rows["gone"])


def test_keep_result_keeps_a_gc_root(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    from netkit import write_network

    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    state = tmp_path / "state"
    done = nixlift("build", net, "--keep-result", env={"XDG_STATE_HOME": str(state)})
    assert done.returncode == 0, done.stderr
    root = state / "nixlift" / "gcroots" / "net" / "h1"
    assert root.is_symlink() and os.readlink(root) == done.stdout.strip()
    assert activations(sb.host("h1")) == []


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    net = tmp_path / "n.nix"
    net.write_text("{ h1 = { ... }: { }; }")
    done = nixlift("eval", net, env={"PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 2
    assert "'nix-instantiate' was not found on PATH" in done.stderr
    assert "nix-bin" in done.stderr
