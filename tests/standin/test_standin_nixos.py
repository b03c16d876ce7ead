"""The stand-in's NixOS layer: eval-config.nix, platform selection, assertions."""

from __future__ import annotations

from pathlib import Path

from .helpers import Standin, nixos

MACHINE = """
{ config, pkgs, lib, ... }: {
  networking.hostName = "web1";
  environment.systemPackages = [ pkgs.hello ];
  services.openssh.enable = true;
  users.users.deploy = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA deploy@example" ];
  };
  fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
  boot.loader.grub.device = "/dev/sda";
  time.timeZone = "UTC";
  system.stateVersion = "24.05";
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_machine_evaluates(standin: Standin, tmp_path: Path) -> None:
    machine = write(tmp_path, "machine.nix", MACHINE)
    result = standin.eval(f"""let c = {nixos([machine])}; in {{
      host = c.config.networking.hostName;
      home = c.config.users.users.deploy.home;
      fs = c.config.fileSystems."/".mountPoint;
      pkgsSystem = c.pkgs.stdenv.hostPlatform.system;
      name = c.config.system.build.toplevel.name;
      etc = builtins.attrNames c.config.environment.etc;
    }}""")
    current = standin.eval("builtins.currentSystem")
    assert result == {
        "host": "web1",
        "home": "/home/deploy",
        "fs": "/",
        "pkgsSystem": current,
        "name": "nixos-system-web1-24.05.standin",
        "etc": ["hostname", "ssh/authorized_keys.d/deploy", "timezone"],
    }


def test_undeclared_option_in_machine_file(standin: Standin, tmp_path: Path) -> None:
    machine = write(tmp_path, "machine.nix", '{ ... }: { networking.hostNme = "x"; }')
    err = standin.eval_error(f"{nixos([machine])}.config.system.build.toplevel.drvPath")
    assert "The option `networking.hostNme' does not exist." in err
    assert str(machine) in err


def test_local_system_sets_toplevel_system(standin: Standin) -> None:
    # eval-config's `system` is the deployer's; the machine's own setting wins.
    result = standin.eval(f"""let c = {
        nixos(['{ nixpkgs.localSystem.system = "aarch64-linux"; }'], system='"x86_64-linux"')
    };
      in [ c.config.system.build.toplevel.system c.pkgs.stdenv.hostPlatform.system
           c.config.nixpkgs.system ]""")
    assert result == ["aarch64-linux", "aarch64-linux", "x86_64-linux"]


def test_host_platform_wins_over_nixpkgs_system(standin: Standin) -> None:
    mod = '{ nixpkgs.hostPlatform = "aarch64-linux"; nixpkgs.system = "armv7l-linux"; }'
    result = standin.eval(f"""let c = {nixos([mod], system='"x86_64-linux"')};
      in [ c.config.system.build.toplevel.system c.pkgs.stdenv.hostPlatform.system
           c.pkgs.stdenv.buildPlatform.system c.config.nixpkgs.hostPlatform.isAarch64 ]""")
    assert result == ["aarch64-linux", "aarch64-linux", "aarch64-linux", True]


def test_nixpkgs_system_without_eval_config_system(standin: Standin) -> None:
    mod = '{ nixpkgs.system = "armv7l-linux"; }'
    result = standin.eval(f"{nixos([mod], system=None)}.config.system.build.toplevel.system")
    assert result == "armv7l-linux"


def test_no_platform_at_all_is_a_clear_error(standin: Standin) -> None:
    err = standin.eval_error(f"{nixos(['{ }'], system=None)}.config.system.build.toplevel.drvPath")
    assert "Neither nixpkgs.hostPlatform nor the legacy option nixpkgs.system has been set." in err


def test_cross_build_platform(standin: Standin) -> None:
    mod = '{ nixpkgs.hostPlatform = "aarch64-linux"; nixpkgs.buildPlatform = "x86_64-linux"; }'
    result = standin.eval(f"""let c = {nixos([mod], system=None)};
      in [ c.pkgs.stdenv.hostPlatform.system c.pkgs.stdenv.buildPlatform.system
           c.config.system.build.toplevel.system ]""")
    # As in nixpkgs, cross-built derivations run on the build platform.
    assert result == ["aarch64-linux", "x86_64-linux", "x86_64-linux"]


def test_failing_assertion_aborts_with_message(standin: Standin) -> None:
    mod = '{ assertions = [ { assertion = false; message = "the disk is too small"; } ]; }'
    err = standin.eval_error(f"{nixos([mod])}.config.system.build.toplevel.drvPath")
    assert "Failed assertions:" in err
    assert "- the disk is too small" in err


def test_overlays_and_special_args(standin: Standin, tmp_path: Path) -> None:
    machine = write(
        tmp_path,
        "machine.nix",
        """{ pkgs, nodeName, ... }: {
      nixpkgs.overlays = [ (final: prev: { motd = final.writeText "motd" "hello"; }) ];
      environment.etc.motd.source = pkgs.motd;
      networking.hostName = nodeName;
    }""",
    )
    expr = (
        f"let c = import <nixpkgs/nixos/lib/eval-config.nix> {{ modules = [ {machine} ]; "
        'specialArgs = { nodeName = "db"; }; }; in [ c.config.networking.hostName '
        "c.config.environment.etc.motd.source.name ]"
    )
    assert standin.eval(expr) == ["db", "motd"]


def test_fault_injection_options_have_defaults(standin: Standin) -> None:
    result = standin.eval(f"{nixos(['{ }'])}.config.standin.activation")
    assert isinstance(result, dict)
    assert result["exitCode"] == 0
    assert result["sleepSeconds"] == 0
