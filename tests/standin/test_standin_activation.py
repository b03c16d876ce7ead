"""The stand-in's activation: `activate`, authorized keys under openssh, the fault knobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import Standin, nixos

ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAliceAl alice"
ROOT = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootRootRootRootRootRootRootRootRootRootRo root"


def build_systems(standin: Standin, tmp_path: Path, modules: dict[str, str]) -> dict[str, Path]:
    """One system per name; key texts reach Nix through a JSON file, never as Nix text."""
    (tmp_path / "keys.json").write_text(json.dumps({"alice": ALICE, "root": ROOT}))
    (tmp_path / "key-file").write_text(ALICE)  # (each file's text gets a newline)
    names = sorted(modules)
    expr = (
        f"let keys = builtins.fromJSON (builtins.readFile {tmp_path}/keys.json); in [ "
        + " ".join(f"({nixos([modules[n]])}.config.system.build.toplevel)" for n in names)
        + " ]"
    )
    out = standin.run(["nix-build", "--no-out-link", "-E", expr]).stdout.split()
    return dict(zip(names, map(Path, out), strict=True))


def run_goal(system: Path, goal: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        NIXLIFT_STANDIN_STATE=str(root / "state"),
        NIXLIFT_STANDIN_RUN=str(root / "run"),
        NIXLIFT_STANDIN_ETC=str(root / "etc"),
    )
    return subprocess.run(
        [str(system / "bin" / "switch-to-configuration"), goal],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=30,
    )


def keys(root: Path) -> dict[str, str]:
    directory = root / "etc" / "ssh" / "authorized_keys.d"
    if not directory.is_dir():
        return {}
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.name[0] != "."}


BOTH = """{ lib, ... }: {
  services.openssh.enable = true;
  users.users.root.openssh.authorizedKeys.keys = [ keys.root ];
  users.users.alice.openssh.authorizedKeys.keyFiles = [ KEYFILE ];
}"""
ROOT_ONLY = """{ lib, ... }: {
  services.openssh.enable = true;
  users.users.root.openssh.authorizedKeys.keys = [ keys.root ];
}"""
NOBODY = "{ services.openssh.enable = true; }"
NO_SSH = "{ users.users.root.openssh.authorizedKeys.keys = [ keys.root ]; }"


@pytest.fixture(scope="module")
def systems(standin: Standin, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("systems")
    key_file = str(tmp / "key-file")
    return build_systems(
        standin,
        tmp,
        {
            "both": BOTH.replace("KEYFILE", key_file),
            "root-only": ROOT_ONLY,
            "nobody": NOBODY,
            "no-ssh": NO_SSH,
            "hang": "{ standin.activation.hang = true; }",
        },
    )


def test_activate_is_part_of_every_system(systems: dict[str, Path], tmp_path: Path) -> None:
    both = systems["both"]
    script = (both / "activate").read_text()
    assert script.startswith(f"#!/bin/sh\nsystemConfig={both}\n")
    assert os.access(both / "activate", os.X_OK)
    env = dict(
        os.environ,
        NIXLIFT_STANDIN_RUN=str(tmp_path / "run"),
        NIXLIFT_STANDIN_ETC=str(tmp_path / "etc"),
    )
    subprocess.run([str(both / "activate")], env=env, check=True)
    assert os.readlink(tmp_path / "run" / "current-system") == str(both)
    assert keys(tmp_path) == {"alice": ALICE + "\n", "root": ROOT + "\n"}
    assert not (tmp_path / "state").exists()  # activate is no bootloader, records nothing


def test_authorized_keys_follow_the_system(systems: dict[str, Path], tmp_path: Path) -> None:
    keys_dir = tmp_path / "etc" / "ssh" / "authorized_keys.d"
    keys_dir.mkdir(parents=True)
    (keys_dir / "bob").write_text("an installer's key\n")  # not written by any activation

    assert run_goal(systems["both"], "switch", tmp_path).returncode == 0
    assert keys(tmp_path) == {
        "alice": ALICE + "\n",
        "bob": "an installer's key\n",
        "root": ROOT + "\n",
    }
    for name in ("alice", "root"):
        assert (keys_dir / name).stat().st_mode & 0o7777 == 0o444
    assert (keys_dir / ".managed").read_text().split() == ["alice", "root"]
    assert [p.name for p in keys_dir.iterdir() if ".tmp." in p.name] == []

    # alice no longer has keys: her file goes; bob's was never the system's and stays
    assert run_goal(systems["root-only"], "test", tmp_path).returncode == 0
    assert keys(tmp_path) == {"bob": "an installer's key\n", "root": ROOT + "\n"}

    # `boot` changes nothing now; dry-activate neither
    assert run_goal(systems["nobody"], "boot", tmp_path).returncode == 0
    assert run_goal(systems["nobody"], "dry-activate", tmp_path).returncode == 0
    assert set(keys(tmp_path)) == {"bob", "root"}

    # openssh disabled: the keys are left as they are
    assert run_goal(systems["no-ssh"], "switch", tmp_path).returncode == 0
    assert set(keys(tmp_path)) == {"bob", "root"}

    # a system without any key: root is locked out, bob (the installer's) is not touched
    assert run_goal(systems["nobody"], "switch", tmp_path).returncode == 0
    assert keys(tmp_path) == {"bob": "an installer's key\n"}
    assert os.readlink(tmp_path / "run" / "current-system") == str(systems["nobody"])

    # the previous system again: root's key is back
    assert run_goal(systems["root-only"], "switch", tmp_path).returncode == 0
    assert set(keys(tmp_path)) == {"bob", "root"}


def test_authorized_keys_in_the_systems_etc(systems: dict[str, Path]) -> None:
    etc = systems["both"] / "etc" / "ssh" / "authorized_keys.d"
    assert (etc / "root").read_text() == ROOT + "\n"
    assert (etc / "alice").read_text() == ALICE + "\n"  # from keyFiles
    assert not (systems["no-ssh"] / "etc" / "ssh").exists()


def test_hang_begins_and_never_switches(systems: dict[str, Path], tmp_path: Path) -> None:
    env = dict(
        os.environ,
        NIXLIFT_STANDIN_STATE=str(tmp_path / "state"),
        NIXLIFT_STANDIN_RUN=str(tmp_path / "run"),
        NIXLIFT_STANDIN_ETC=str(tmp_path / "etc"),
    )
    hang = systems["hang"]
    child = subprocess.Popen(
        [str(hang / "bin" / "switch-to-configuration"), "switch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        begun = tmp_path / "state" / "activations-begun"
        deadline = time.monotonic() + 10
        while not begun.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert begun.read_text() == f"switch {hang}\n"
        time.sleep(0.5)
        assert child.poll() is None  # still running
        assert not (tmp_path / "run").exists()
        assert not (tmp_path / "state" / "boot-default").exists()
        assert not (tmp_path / "state" / "activations.jsonl").exists()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate(timeout=10)
    assert "hangs (standin.activation.hang)" in err


def test_every_knob_is_documented(standin: Standin) -> None:
    options = standin.eval(f"""let o = {nixos(["{ }"])}.options.standin.activation; in
      builtins.mapAttrs (n: v: {{ internal = v.internal or false; description = v.description; }})
        o""")
    assert isinstance(options, dict)
    assert {"exitCode", "sleepSeconds", "hang"} <= set(options)
    for name, option in options.items():
        assert len(option["description"].split()) >= 10, name
    config = standin.eval(f"{nixos(['{ }'])}.config.standin.activation.hang")
    assert config is False
