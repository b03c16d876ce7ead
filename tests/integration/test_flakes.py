"""Flakes as their users keep them, deployed to sandbox hosts with real nix and ssh, offline:
nixos-rebuild's nixosConfigurations, colmena's `colmena` and `colmenaHive`, deploy-rs' `deploy`
(a system profile and another one), NixOps 2's nixopsConfigurations.default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SandboxFactory
from flakekit import write_flake
from netkit import (
    activations,
    current_system,
    deploy_json,
    err,
    nixlift,
    profile_system,
    write_network,
)

pytestmark = pytest.mark.integration


def test_nixos_configurations_with_ssh_settings_from_nix_sshopts(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    flake = tmp_path / "fleet"
    write_flake(
        flake,
        sb,
        """{
      # h1 has no deployment options: reached as root@h1, ssh settings from NIX_SSHOPTS
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [ access { environment.etc."role".text = "plain"; } ];
      };
      # h2 imports nixlift's options module and says how it is reached itself
      nixosConfigurations.h2 = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [
          "${nixlift}/deployment.nix"
          access
          { deployment.sshOptions = [ "-F" sb.sshConfig ]; deployment.tags = [ "module" ];
            environment.etc."role".text = "module"; }
        ];
      };
    }""",
        inputs=("nixpkgs", "nixlift"),
    )
    env = {"NIX_SSHOPTS": f"-F {sb.ssh_config}"}
    # nixos-rebuild's way: one machine of nixosConfigurations
    done, hosts = deploy_json("--flake", ".#h1", cwd=flake, env=env)
    assert done.returncode == 0, done.stderr
    assert "reading " + str(flake) + "#nixosConfigurations.h1" in done.stderr
    assert list(hosts) == ["h1"]
    h1 = sb.host("h1")
    assert current_system(h1) == hosts["h1"]["system"] == profile_system(h1)
    assert Path(hosts["h1"]["system"], "etc/role").read_text().strip() == "plain"
    assert [a["goal"] for a in activations(sb.host("h2"))] == []

    listed = nixlift("eval", "--json", flake, env=env)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert doc["output"] == "nixosConfigurations"
    rows = {m["name"]: m for m in doc["machines"]}
    assert rows["h1"]["target"] == "root@h1"
    assert rows["h1"]["deployment"]["sshOptions"] == ["-F", str(sb.ssh_config)]
    assert rows["h2"]["deployment"]["tags"] == ["module"]

    # the whole output, without NIX_SSHOPTS: h2 brings its own ssh settings
    done, hosts = deploy_json(flake, "--on", "@module")
    assert done.returncode == 0, done.stderr
    h2 = sb.host("h2")
    assert current_system(h2) == hosts["h2"]["system"]
    assert Path(hosts["h2"]["system"], "etc/role").read_text().strip() == "module"


COLMENA_HIVE = """
        meta = {
          nixpkgs = pkgs;
          description = "hive from a flake";
          specialArgs.site = "ams";
          nodeSpecialArgs.h2.site = "fra";
        };
        defaults = { lib, ... }: {
          imports = [ access ];
          deployment.sshOptions = [ "-F" sb.sshConfig ];
        };
        h1 = { site, name, ... }: { environment.etc."site".text = "${name}@${site}"; };
        h2 = [ ({ site, name, ... }: { environment.etc."site".text = "${name}@${site}"; }) ];
"""


@pytest.mark.parametrize("output", ["colmena", "colmenaHive"])
def test_colmena_hive_in_a_flake(
    sandbox_factory: SandboxFactory, tmp_path: Path, output: str
) -> None:
    sb = sandbox_factory(2)
    flake = tmp_path / "hive"
    write_flake(
        flake,
        sb,
        "let raw = {"
        + COLMENA_HIVE
        + "}; in { colmena = raw; colmenaHive = colmena.lib.makeHive raw; }",
        inputs=("nixpkgs", "colmena"),
    )
    done, hosts = deploy_json(f"{flake}#{output}")
    assert done.returncode == 0, done.stderr
    assert f"#{output}" in done.stderr
    for name, site in (("h1", "ams"), ("h2", "fra")):
        host = sb.host(name)
        assert hosts[name]["status"] == "ok"
        assert current_system(host) == hosts[name]["system"]
        assert Path(hosts[name]["system"], "etc/site").read_text().strip() == f"{name}@{site}"
    if output == "colmenaHive":
        # without #ATTR, colmenaHive is the first output nixlift looks for
        listed = nixlift("eval", "--json", flake)
        assert json.loads(listed.stdout)["output"] == "colmenaHive"


def test_deploy_rs_nodes_with_a_system_and_a_user_profile(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    flake = tmp_path / "deploy"
    write_flake(
        flake,
        sb,
        """{
      nixosConfigurations = lib.genAttrs [ "h1" "h2" ] (name: nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [ access { environment.etc."role".text = "deploy-rs ${name}"; } ];
      });
      deploy = {
        sshUser = "root";
        sshOpts = [ "-F" sb.sshConfig ];
        nodes.h1 = {
          hostname = "h1";
          profilesOrder = [ "greeting" ];
          profiles.system.path = deploy-rs.lib.${system}.activate.nixos self.nixosConfigurations.h1;
          profiles.greeting = {
            user = "deploy";
            path = deploy-rs.lib.${system}.activate.custom
              (pkgs.writeTextDir "share/greeting" "hello")
              "echo \\"$(id -un) $PROFILE\\" > \\"$HOME/greeting-activated\\"";
          };
        };
        # a system profile whose activation is the user's own: it is what runs
        nodes.h2 = {
          hostname = "h2";
          profiles.system.path = deploy-rs.lib.${system}.activate.custom
            self.nixosConfigurations.h2.config.system.build.toplevel
            ''
              echo "$PROFILE" > /var/lib/standin/custom
              $PROFILE/bin/switch-to-configuration switch
            '';
        };
      };
    }""",
        inputs=("nixpkgs", "deploy-rs"),
    )
    [node, _] = json.loads(nixlift("eval", "--json", f"{flake}#deploy").stdout)["machines"]
    assert [(p["name"], p["user"]) for p in node["profiles"]] == [("greeting", "deploy")]
    done, hosts = deploy_json(f"{flake}#deploy")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "deploy"
    h1, h2 = sb.host("h1"), sb.host("h2")
    profile = hosts["h1"]["system"]
    # the system profile is the deploy-rs profile (the NixOS system plus deploy-rs-activate);
    # what runs is the NixOS system in it, switched to by its deploy-rs-activate
    assert profile_system(h1) == profile
    assert Path(profile, "deploy-rs-activate").exists()
    running = current_system(h1)
    assert running is not None and running != profile
    assert Path(running, "etc/role").read_text().strip() == "deploy-rs h1"
    assert [a["goal"] for a in activations(h1)] == ["switch"]
    # the other profile: installed as deploy's, activated as deploy with PROFILE set (the host
    # has no /nix/var/nix/profiles/per-user/deploy: deploy-rs' place is then the user's own
    # state directory)
    where = h1.resolve("/home/deploy/.local/state/nix/profiles/greeting")
    assert where is not None and where.endswith("-activatable-greeting")
    assert h1.read_text(where + "/share/greeting") == "hello"
    marker = (h1.read_text("/home/deploy/greeting-activated") or "").split()
    assert marker == ["deploy", "/home/deploy/.local/state/nix/profiles/greeting"]
    # h2's own activation ran, with PROFILE the system profile
    assert (h2.read_text("/var/lib/standin/custom") or "").strip() == "/nix/var/nix/profiles/system"
    assert profile_system(h2) == hosts["h2"]["system"]
    # the hosts run what the nodes build
    info = nixlift("info", f"{flake}#deploy", "--json")
    states = {m["name"]: m["state"] for m in json.loads(info.stdout)["hosts"]}
    assert states == {"h1": "up-to-date", "h2": "up-to-date"}, info.stderr


def test_nixops2_flake_and_its_unused_state_options(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    flake = tmp_path / "nixops"
    write_flake(
        flake,
        sb,
        """{
      nixopsConfigurations.default = {
        inherit nixpkgs;
        network.description = "nixops 2";
        network.storage.legacy = { };
        network.lock.noop = { };
        defaults = { imports = [ access ]; deployment.sshOptions = [ "-F" sb.sshConfig ]; };
        h1 = { name, nodes, ... }: {
          environment.etc."peers".text = toString (builtins.attrNames nodes);
        };
      };
    }""",
    )
    done, hosts = deploy_json("--flake", flake)
    assert done.returncode == 0, done.stderr
    assert "#nixopsConfigurations.default" in done.stderr
    # accepted, said once each, not acted on
    assert done.stderr.count("network.storage: accepted and not used") == 1
    assert done.stderr.count("network.lock: accepted and not used") == 1
    h1 = sb.host("h1")
    assert current_system(h1) == hosts["h1"]["system"]
    assert Path(hosts["h1"]["system"], "etc/peers").read_text().strip() == "h1"


def test_create_flake_then_deploy_by_name(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    flake = tmp_path / "fleet"
    write_flake(
        flake,
        sb,
        """{
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [ access ];
      };
    }""",
    )
    env = {
        "NIXLIFT_REGISTRY": str(tmp_path / "registry.json"),
        "NIX_SSHOPTS": f"-F {sb.ssh_config}",
    }
    created = nixlift("create", "--flake", ".#h1", "-d", "pi", cwd=flake, env=env)
    assert created.returncode == 0, created.stderr
    assert f"flake {flake}#h1" in created.stderr
    done, hosts = deploy_json("-d", "pi", cwd=Path("/"), env=env)
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_deploy_with_no_argument_finds_hive_nix(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    write_network(tmp_path, sb, "  h1 = { ... }: { };", name="hive.nix")
    below = tmp_path / "machines" / "h1"
    below.mkdir(parents=True)
    done, hosts = deploy_json(cwd=below)
    assert done.returncode == 0, done.stderr
    assert f"using {tmp_path / 'hive.nix'}" in done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_a_failing_deploy_rs_profile_goes_back_to_its_previous_generation(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    flake = tmp_path / "deploy"
    write_flake(
        flake,
        sb,
        """{
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem { inherit system; modules = [ access ]; };
      deploy.nodes.h1 = {
        hostname = "h1";
        sshUser = "root";
        sshOpts = [ "-F" sb.sshConfig ];
        profiles.system.path = deploy-rs.lib.${system}.activate.nixos self.nixosConfigurations.h1;
        # root's own profile; the second version's activation fails
        profiles.tools = let broken = builtins.pathExists ./broken; in {
          user = "root";
          path = deploy-rs.lib.${system}.activate.custom
            (pkgs.writeTextDir "share/version" (if broken then "2" else "1"))
            (if broken then "echo tools: cannot start >&2; exit 3" else "echo tools: started");
        };
      };
    }""",
        inputs=("nixpkgs", "deploy-rs"),
    )
    done, hosts = deploy_json(flake)
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    link = "/nix/var/nix/profiles/per-user/root/tools"
    first = h1.resolve(link)
    assert first is not None and h1.read_text(first + "/share/version") == "1"

    (flake / "broken").write_text("")
    done, hosts = deploy_json(flake)
    assert done.returncode == 1
    h = hosts["h1"]
    assert h["status"] == "failed" and h["activated"]
    assert "the profile tools (root" in err(h) and "exited with 3" in err(h)
    assert "rolled back to its previous generation" in err(h)
    assert "cannot start" in done.stderr
    # the profile is where it was; the system stays what this deploy activated
    assert h1.resolve(link) == first
    assert current_system(h1) is not None
    assert profile_system(h1) == h["system"]
