"""Peer formats evaluated by real nix, and their failures: NixOps' require (loops read once),
morph's ordering and selection flags, finding the configuration from the current directory,
flake.lock pins, flakes in git repositories, and each format's clear errors (exit 2, no host
touched)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import SandboxFactory
from flakekit import path_url, write_flake
from netkit import STANDIN, activations, current_system, deploy_json, nixlift, write_network

pytestmark = pytest.mark.integration

FLAKES = ["--extra-experimental-features", "nix-command flakes"]


def machines(*args: str | Path, cwd: Path | None = None) -> list[dict[str, Any]]:
    done = nixlift("eval", *args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)["machines"]
    return found


def names(*args: str | Path, cwd: Path | None = None) -> list[str]:
    return [m["name"] for m in machines(*args, cwd=cwd)]


def test_a_require_loop_evaluates_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "a.nix").write_text(
        "{ require = [ ./b.nix ./c.nix ]; network.nixpkgs = "
        + json.dumps(str(STANDIN))
        + '; web = { environment.etc."from-a".text = "a"; }; }\n'
    )
    (tmp_path / "b.nix").write_text("{ require = [ ./a.nix ./c.nix ]; db = { }; }\n")
    # c is required twice: its `web` module counts once (a list option would show it twice)
    (tmp_path / "c.nix").write_text(
        '{ require = [ ./b.nix ]; web = { deployment.tags = [ "from-c" ]; }; }\n'
    )
    found = {m["name"]: m for m in machines(tmp_path / "a.nix")}
    assert sorted(found) == ["db", "web"]
    assert found["web"]["deployment"]["tags"] == ["from-c"]


MORPH = """
  network.ordering.tags = [ "db" "web" ];
  w1 = { deployment.tags = [ "web" "eu" ]; };
  d1 = { deployment.tags = [ "db" ]; };
  w2 = { deployment.tags = [ "web" ]; };
  x1 = { };
  d2 = { deployment.tags = [ "db" "eu" ]; };
"""


def test_morph_ordering_and_selection_flags(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, MORPH)
    # the hosts of each ordering tag in turn, then the rest (each group in the network's order)
    assert names(net) == ["d1", "d2", "w1", "w2", "x1"]
    assert names(net, "--tagged", "eu") == ["d2", "w1"]
    assert names(net, "--tagged", "web,eu") == ["w1"]
    assert names(net, "--skip", "1", "--every", "2") == ["d2", "w2"]
    assert names(net, "--skip", "1", "--limit", "2") == ["d2", "w1"]
    assert names(net, "--on", "w*,x1", "--limit", "2") == ["w1", "w2"]
    none = nixlift("eval", net, "--skip", "9")
    assert none.returncode == 2 and "leaves no machine" in none.stderr
    bad = nixlift("eval", net, "--every", "0")
    assert bad.returncode == 2 and "--every" in bad.stderr


def test_morph_ordering_deploys_a_tags_hosts_before_the_next(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    # h3 (db) is slow to activate: without the ordering, the web hosts would finish first
    net = write_network(
        tmp_path,
        sb,
        """
  network.ordering.tags = [ "db" "web" ];
  h1 = { deployment.tags = [ "web" ]; };
  h2 = { deployment.tags = [ "web" ]; };
  h3 = { deployment.tags = [ "db" ]; standin.activation.sleepSeconds = 2; };
""",
    )
    done, hosts = deploy_json(net, "--parallel", "0")
    assert done.returncode == 0, done.stderr
    assert list(hosts) == ["h3", "h1", "h2"]
    db_done = activations(sb.host("h3"))[0]["time"]
    # a web host's activation records its time when it ends, right after it began
    assert all(activations(sb.host(h))[0]["time"] > db_done for h in ("h1", "h2"))


def test_finding_the_configuration_from_the_current_directory(tmp_path: Path) -> None:
    top = tmp_path / "top"
    write_network(top, None, "  from-network = { };", name="network.nix")
    below = top / "deeper"
    write_network(below, None, "  from-hive = { };", name="hive.nix")
    # a flake with none of the outputs (a package's own) is passed over for hive.nix beside it
    write_flake(below, None, "{ packages = { }; }")
    inner = below / "src"
    inner.mkdir()
    done = nixlift("eval", "--json", cwd=inner)
    assert done.returncode == 0, done.stderr
    assert f"using {below / 'hive.nix'}" in done.stderr
    assert [m["name"] for m in json.loads(done.stdout)["machines"]] == ["from-hive"]
    # a flake with an output wins over hive.nix in the same directory
    write_flake(
        below,
        None,
        "{ nixosConfigurations.from-flake = nixpkgs.lib.nixosSystem "
        "{ inherit system; modules = [ ]; }; }",
    )
    assert names(cwd=inner) == ["from-flake"]
    # nixops.nix and network.nix, one directory up
    assert names(cwd=top) == ["from-network"]
    nowhere = tmp_path / "empty"
    nowhere.mkdir()
    done = nixlift("eval", cwd=nowhere, env={"NIXLIFT_REGISTRY": str(tmp_path / "none.json")})
    assert done.returncode == 2
    assert "flake.nix, hive.nix, nixops.nix, network.nix" in done.stderr


def test_a_flake_lock_pins_an_input_until_it_is_updated(tmp_path: Path) -> None:
    dep = tmp_path / "dep"
    dep.mkdir()
    (dep / "flake.nix").write_text(
        '{ outputs = { self }: { nixosModules.default = { environment.etc."v".text = "1"; }; }; }\n'
    )
    fleet = tmp_path / "fleet"
    write_flake(
        fleet,
        None,
        """{
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [ inputs.dep.nixosModules.default ];
      };
    }""",
        extra_inputs=f"inputs.dep.url = {path_url(dep)};",
    )
    first = machines(fleet)[0]["out_path"]
    assert (fleet / "flake.lock").exists()  # written as `nix build` would
    (dep / "flake.nix").write_text((dep / "flake.nix").read_text().replace('"1"', '"2"'))
    assert machines(fleet)[0]["out_path"] == first  # the lock still pins the old dep
    subprocess.run(
        ["nix", *FLAKES, "flake", "lock", "--update-input", "dep", str(fleet)],
        check=True,
        capture_output=True,
    )
    assert machines(fleet)[0]["out_path"] != first


def test_a_flake_in_git_sees_only_tracked_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    fleet = repo / "fleet"
    write_flake(
        fleet,
        None,
        """{
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem { inherit system; modules = [ ./h1.nix ]; };
    }""",
    )
    (fleet / "h1.nix").write_text("{ }\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "0")
    done = nixlift("eval", fleet, cwd=repo)
    assert done.returncode == 2
    assert "fleet/flake.nix" in done.stderr and "not tracked by git" in done.stderr
    assert "git add fleet/flake.nix" in done.stderr
    git("add", "fleet/flake.nix", "fleet/sandbox.json")
    done = nixlift("eval", fleet, cwd=repo)
    assert done.returncode == 2, done.stderr
    assert "git add fleet/h1.nix" in done.stderr and "Traceback" not in done.stderr
    git("add", "fleet/h1.nix")
    assert names(fleet, cwd=repo) == ["h1"]


BROKEN = {
    "no output": ("{ packages = { }; }", "has none of the outputs nixlift reads"),
    "unknown attr": ("{ nixosConfigurations = { }; }#nope", "has no output `nope`"),
    "schema": (
        '{ colmenaHive = { __schema = "v0.4"; nodes = { }; }; }',
        '__schema = "v0.4"',
    ),
    "not a hive": ("{ colmenaHive = { nodes = { }; }; }", "has no __schema"),
    "no hostname": (
        "{ deploy.nodes.h1.profiles.system.path = pkgs.hello; }",
        "deploy.nodes.h1 in",
    ),
    "no system profile": (
        '{ deploy.nodes.h1 = { hostname = "h1"; profiles = { }; }; }',
        "has no `system` profile",
    ),
    "colmena path nixpkgs": (
        "{ colmena = { meta.nixpkgs = nixpkgs.outPath; h1 = { }; }; }",
        "a path to nixpkgs",
    ),
    "nixops without nixpkgs": (
        "{ nixopsConfigurations.default = { h1 = { }; }; }",
        "has no `nixpkgs` attribute",
    ),
}


def test_each_formats_failure_is_a_clear_error_and_touches_no_host(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    for case, (outputs, words) in BROKEN.items():
        body, _, attr = outputs.partition("#")
        flake = tmp_path / case.replace(" ", "-")
        write_flake(flake, sb, body)
        done = nixlift("deploy", f"{flake}#{attr}" if attr else flake)
        assert done.returncode == 2, (case, done.stderr)
        assert words in done.stderr, (case, done.stderr)
        assert "hint:" in done.stderr and "Traceback" not in done.stderr, case
    # colmena's allowApplyAll = false: a deploy must name its machines
    hive = write_network(
        tmp_path / "hive",
        sb,
        "  meta.allowApplyAll = false;\n  h1 = { ... }: { };",
        name="hive.nix",
    )
    done = nixlift("deploy", hive)
    assert done.returncode == 2 and "allowApplyAll = false" in done.stderr and "--on" in done.stderr
    h1 = sb.host("h1")
    assert activations(h1) == [] and current_system(h1) is None
    done, hosts = deploy_json(hive, "--on", "h1")
    assert done.returncode == 0, done.stderr
    assert current_system(h1) == hosts["h1"]["system"]


ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_flake_gives_the_options_module(tmp_path: Path) -> None:
    # the repository's flake.nix and the file it names, alone (the whole checkout, tests
    # included, has no business in the store)
    copy = tmp_path / "nixlift"
    (copy / "src/nixlift/nix").mkdir(parents=True)
    (copy / "flake.nix").write_text((ROOT / "flake.nix").read_text())
    module = ROOT / "src/nixlift/nix/deployment.nix"
    (copy / "src/nixlift/nix/deployment.nix").write_text(module.read_text())
    fleet = tmp_path / "fleet"
    write_flake(
        fleet,
        None,
        """{
      nixosConfigurations.pi3 = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [ inputs.nixlift.nixosModules.default { deployment.targetPort = 2222; } ];
      };
    }""",
        # nixlift's own nixpkgs input (for its package) is the fleet's: nothing is fetched
        extra_inputs=f"inputs.nixlift.url = {path_url(copy)}; "
        'inputs.nixlift.inputs.nixpkgs.follows = "nixpkgs";',
    )
    [pi3] = machines(f"{fleet}#pi3")
    assert pi3["target"] == "root@pi3:2222"
    assert pi3["deployment"]["magicRollback"] is True


def test_deploy_rs_settings_take_deploy_rs_precedence(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    write_flake(
        fleet,
        None,
        """{
      nixosConfigurations.h1 = nixpkgs.lib.nixosSystem { inherit system; modules = [ ]; };
      deploy = {
        sshUser = "top"; sshOpts = [ "-o" "top=1" ]; confirmTimeout = 45; fastConnection = false;
        sudo = "doas -u"; tempPath = "/var/tmp";
        nodes.h1 = {
          hostname = "10.0.0.7";
          sshUser = "node"; sshOpts = [ "-o" "node=1" ]; fastConnection = true;
          remoteBuild = true; magicRollback = false;
          profiles.system = {
            path = deploy-rs.lib.${system}.activate.nixos self.nixosConfigurations.h1;
            sshUser = "admin"; sshOpts = [ "-p" "2222" ]; activationTimeout = 60;
          };
        };
      };
    }""",
        inputs=("nixpkgs", "deploy-rs"),
    )
    done = nixlift("eval", "--json", fleet)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    [h1] = doc["machines"]
    d = h1["deployment"]
    # profile > node > top; sshOpts appended in that order
    assert h1["target"] == "admin@10.0.0.7"
    assert d["sshOptions"] == ["-p", "2222", "-o", "node=1", "-o", "top=1"]
    assert (d["hasFastConnection"], d["buildOnTarget"], d["magicRollback"]) == (True, True, False)
    assert (d["confirmTimeout"], d["activationTimeout"], d["autoRollback"]) == (45, 60, True)
    assert d["privilegeEscalationCommand"] == ["doas", "-u", "root"]
    assert doc["notices"] == [
        "deploy.nodes.h1: tempPath is not used (nixlift keeps its confirmation in /run/nixlift "
        "on the host)"
    ]
    assert "note: deploy.nodes.h1: tempPath is not used" in done.stderr
