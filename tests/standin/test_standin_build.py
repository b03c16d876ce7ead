"""Building with the stand-in: the toplevel, its switch-to-configuration, foreign systems."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import Standin, nixos

MACHINE = """
{ config, pkgs, lib, ... }: {
  networking.hostName = "web1";
  environment.systemPackages = [ pkgs.hello (pkgs.writeShellScriptBin "greet" "echo hi") ];
  environment.etc."motd".text = "welcome";
  environment.etc."app/app.conf" = { text = "x = 1"; mode = "0440"; };
  environment.etc."copied".source = pkgs.writeText "copied" "from a source";
  environment.etc."disabled" = { text = "no"; enable = false; };
  standin.activation.exitCode = EXIT_CODE;
}
"""

BUSYBOX = Path("/usr/libexec/nixlift-standin/aarch64-linux/busybox")
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def build_machine(standin: Standin, tmp_path: Path, exit_code: int = 0) -> Path:
    machine = tmp_path / f"machine-{exit_code}.nix"
    machine.write_text(MACHINE.replace("EXIT_CODE", str(exit_code)))
    return standin.build(f"{nixos([machine])}.config.system.build.toplevel")


@pytest.fixture(scope="module")
def toplevel(standin: Standin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_machine(standin, tmp_path_factory.mktemp("machine"))


def switch(
    toplevel: Path, goal: str, state: Path, run: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NIXLIFT_STANDIN_STATE=str(state))
    if run is not None:
        env["NIXLIFT_STANDIN_RUN"] = str(run)
    return subprocess.run(
        [str(toplevel / "bin" / "switch-to-configuration"), goal],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def records(state: Path) -> list[dict[str, object]]:
    lines = (state / "activations.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_toplevel_contents(standin: Standin, toplevel: Path) -> None:
    current = standin.eval("builtins.currentSystem")
    assert toplevel.name.endswith("-nixos-system-web1-24.05.standin")
    assert (toplevel / "system").read_text() == current
    assert (toplevel / "nixos-version").read_text() == "24.05.standin"
    assert (toplevel / "configuration-name").read_text()
    assert (toplevel / "etc" / "motd").read_text() == "welcome"
    assert (toplevel / "etc" / "hostname").read_text() == "web1\n"
    assert (toplevel / "etc" / "app" / "app.conf").read_text() == "x = 1"
    assert (toplevel / "etc" / "copied").read_text() == "from a source"
    assert not (toplevel / "etc" / "disabled").exists()
    hello = subprocess.run(
        [str(toplevel / "sw" / "bin" / "hello")], capture_output=True, text=True, check=True
    )
    assert hello.stdout == "Hello, world!\n"
    assert (toplevel / "sw" / "bin" / "greet").is_symlink()
    stc = (toplevel / "bin" / "switch-to-configuration").read_text()
    assert stc.startswith(f"#!/bin/sh\ntoplevel={toplevel}\n")
    assert os.access(toplevel / "bin" / "switch-to-configuration", os.X_OK)


def test_switch_records_activation(toplevel: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = time.time()
    proc = switch(toplevel, "switch", state, run=tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "activating the configuration" in proc.stderr
    [record] = records(state)
    assert record["goal"] == "switch"
    assert record["system"] == str(toplevel)
    assert record["exitCode"] == 0
    assert isinstance(record["time"], float | int)
    assert before - 1 <= record["time"] <= time.time() + 1
    assert (state / "boot-default").read_text() == f"{toplevel}\n"
    assert os.readlink(tmp_path / "run" / "current-system") == str(toplevel)


def test_goals(toplevel: Path, tmp_path: Path) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    assert switch(toplevel, "boot", state, run).returncode == 0
    assert (state / "boot-default").read_text() == f"{toplevel}\n"
    assert not (run / "current-system").exists()
    (state / "boot-default").unlink()
    assert switch(toplevel, "test", state, run).returncode == 0
    assert os.readlink(run / "current-system") == str(toplevel)
    assert not (state / "boot-default").exists()
    (run / "current-system").unlink()
    dry = switch(toplevel, "dry-activate", state, run)
    assert dry.returncode == 0
    assert dry.stdout == f"would activate {toplevel}\n"
    assert not (run / "current-system").exists()
    assert not (state / "boot-default").exists()
    assert [r["goal"] for r in records(state)] == ["boot", "test", "dry-activate"]


def test_bad_goal_prints_usage(toplevel: Path, tmp_path: Path) -> None:
    proc = switch(toplevel, "reboot", tmp_path / "state")
    assert proc.returncode == 1
    assert "Usage:" in proc.stderr
    assert not (tmp_path / "state" / "activations.jsonl").exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a private /run",
)
def test_switch_updates_run_current_system(toplevel: Path, tmp_path: Path) -> None:
    # A private mount namespace with a tmpfs on /run: the real /run is never touched.
    stc = toplevel / "bin" / "switch-to-configuration"
    script = (
        f"mount -t tmpfs standin /run && NIXLIFT_STANDIN_STATE={tmp_path} {stc} switch"
        " && readlink /run/current-system && ls -A /run"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(toplevel), "current-system"]


def test_exit_code_100(standin: Standin, tmp_path: Path) -> None:
    toplevel = build_machine(standin, tmp_path, exit_code=100)
    proc = switch(toplevel, "switch", tmp_path / "state", run=tmp_path / "run")
    assert proc.returncode == 100
    [record] = records(tmp_path / "state")
    assert record["exitCode"] == 100
    assert (tmp_path / "state" / "boot-default").exists()


def test_sleep_seconds(standin: Standin, tmp_path: Path) -> None:
    mod = "{ standin.activation.sleepSeconds = 1; }"
    toplevel = standin.build(f"{nixos([mod])}.config.system.build.toplevel")
    start = time.monotonic()
    assert switch(toplevel, "test", tmp_path / "state", run=tmp_path / "run").returncode == 0
    assert time.monotonic() - start >= 1


def test_failing_package_fails_toplevel(standin: Standin) -> None:
    mod = """{ pkgs, ... }: {
      environment.systemPackages = [ (pkgs.runCommand "broken-1.0" { } "echo boom >&2; exit 3") ];
    }"""
    err = standin.build_error(f"{nixos([mod])}.config.system.build.toplevel")
    assert "broken-1.0.drv" in err
    assert "boom" in err


def test_trivial_builders(standin: Standin) -> None:
    out = standin.build("""let pkgs = import <nixpkgs> { }; in pkgs.symlinkJoin {
      name = "joined";
      paths = [
        (pkgs.runCommand "env-var" { greeting = "hello"; } ''
          mkdir -p $out/share; echo "$greeting" > $out/share/greeting
        '')
        (pkgs.writeTextDir "etc/x.conf" "x")
        (pkgs.writeShellScriptBin "tool" "echo tool")
      ];
    }""")
    assert (out / "share" / "greeting").read_text() == "hello\n"
    assert (out / "etc" / "x.conf").read_text() == "x"
    tool = subprocess.run([str(out / "bin" / "tool")], capture_output=True, text=True, check=True)
    assert tool.stdout == "tool\n"


def test_builder_per_system(standin: Standin) -> None:
    native = standin.eval("(import <nixpkgs> { }).hello.drvAttrs.args")
    assert isinstance(native, list)
    assert native[0] == "-c"
    expr = """let hello = (import <nixpkgs> { system = "riscv64-linux"; }).hello;
      in [ hello.system hello.drvAttrs.builder (builtins.head hello.drvAttrs.args) hello.bb ]"""
    bb = "/opt/bb/riscv64-linux/busybox"
    result = standin.eval(expr, env={"NIXLIFT_STANDIN_BUSYBOX_DIR": "/opt/bb"})
    assert result == ["riscv64-linux", bb, "sh", bb]
    default = standin.eval(expr, env={"NIXLIFT_STANDIN_BUSYBOX_DIR": ""})
    assert isinstance(default, list)
    assert default[1] == "/usr/libexec/nixlift-standin/riscv64-linux/busybox"


def _why_no_aarch64() -> str | None:
    if not BUSYBOX.exists():
        return f"no aarch64 busybox at {BUSYBOX}"
    if not BINFMT.exists() or "enabled" not in BINFMT.read_text():
        return "no enabled qemu-aarch64 binfmt_misc handler"
    return None


@pytest.mark.skipif(_why_no_aarch64() is not None, reason=str(_why_no_aarch64()))
def test_aarch64_toplevel_builds_through_busybox(standin: Standin, tmp_path: Path) -> None:
    machine = tmp_path / "pi.nix"
    machine.write_text(
        MACHINE.replace("EXIT_CODE", "0").replace(
            'networking.hostName = "web1";',
            'networking.hostName = "pi"; nixpkgs.hostPlatform = "aarch64-linux";',
        )
    )
    expr = f"{nixos([machine])}.config.system.build.toplevel"
    drv = standin.eval(f"let t = {expr}; in [ t.system t.drvAttrs.builder ]")
    assert drv == ["aarch64-linux", str(BUSYBOX)]
    toplevel = standin.build(expr, "--option", "extra-platforms", "aarch64-linux")
    assert (toplevel / "system").read_text() == "aarch64-linux"
    assert (toplevel / "etc" / "app" / "app.conf").read_text() == "x = 1"
    assert (toplevel / "etc" / "copied").read_text() == "from a source"
    assert (toplevel / "sw" / "bin" / "hello").exists()
    stc = (toplevel / "bin" / "switch-to-configuration").read_text()
    assert stc.startswith(f"#!/bin/sh\ntoplevel={toplevel}\n")
