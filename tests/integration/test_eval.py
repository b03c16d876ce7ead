"""Network files as NixOps, morph and colmena users write them, evaluated by real nix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from netkit import STANDIN, nixlift

pytestmark = pytest.mark.integration


def eval_json(*args: str | Path, cwd: Path | None = None) -> dict[str, dict[str, Any]]:
    done = nixlift("eval", *args, "--json", "--nixpkgs", STANDIN, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)["machines"]}


def build(*args: str | Path) -> dict[str, Path]:
    """`nixlift build … --json`: each machine's built system."""
    done = nixlift("build", *args, "--nixpkgs", STANDIN, "--json")
    assert done.returncode == 0, done.stderr
    return {h["name"]: Path(h["system"]) for h in json.loads(done.stdout)["hosts"]}


def test_machine_forms_nodes_and_module_arguments(tmp_path: Path) -> None:
    (tmp_path / "web.nix").write_text(
        '{ config, name, ... }: { environment.etc."me".text = name; }\n'
    )
    net = tmp_path / "net.nix"
    net.write_text("""
{
  network.description = "forms";
  defaults = { lib, ... }: { deployment.tags = [ "all" ]; };
  # a path, a function, a plain module and a list of modules
  web = ./web.nix;
  db = { nodes, deploymentName, uuid, resources, ... }: {
    environment.etc."peer".text = nodes.web.config.networking.hostName;
    environment.etc."deployment".text = deploymentName;
    deployment.tags = [ "db" ];
  };
  plain = { deployment.targetHost = "10.0.0.9"; };
  multi = [ { deployment.targetPort = 2200; } ({ ... }: { deployment.targetUser = "ops"; }) ];
}
""")
    machines = eval_json(net)
    assert set(machines) == {"web", "db", "plain", "multi"}
    assert machines["plain"]["target"] == "root@10.0.0.9"
    assert machines["multi"]["target"] == "ops@multi:2200"
    assert sorted(machines["db"]["deployment"]["tags"]) == ["all", "db"]
    built = build(net, "--on", "web,db")
    web, db = built["web"], built["db"]
    assert (web / "etc/me").read_text().strip() == "web"
    assert (db / "etc/peer").read_text().strip() == "web"
    assert (db / "etc/deployment").read_text().strip() == "net"


def test_several_files_merge_in_order(tmp_path: Path) -> None:
    (tmp_path / "logical.nix").write_text("""{
  network.description = "logical";
  web = { ... }: { environment.etc."a".text = "logical"; };
}""")
    (tmp_path / "physical.nix").write_text("""{
  network.description = "physical";
  web = { ... }: { deployment.targetHost = "192.0.2.7"; };
  extra = { ... }: { };
}""")
    done = nixlift(
        "eval", tmp_path / "logical.nix", tmp_path / "physical.nix", "--json", "--nixpkgs", STANDIN
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["description"] == "physical"
    assert doc["deployment"] == "logical"
    rows = {m["name"]: m for m in doc["machines"]}
    assert set(rows) == {"web", "extra"} and rows["web"]["target"] == "root@192.0.2.7"


def test_colmena_meta_and_tags(tmp_path: Path) -> None:
    net = tmp_path / "hive.nix"
    net.write_text("""{
  meta = {
    description = "hive";
    specialArgs = { site = "ams"; };
    nodeSpecialArgs.b = { site = "fra"; };
  };
  a = { site, ... }: { environment.etc."site".text = site; deployment.tags = [ "edge" ]; };
  b = { site, ... }: { environment.etc."site".text = site; };
  c = { ... }: { deployment.tags = [ "edge" "db" ]; };
}""")
    assert set(eval_json(net, "--on", "@edge")) == {"a", "c"}
    assert set(eval_json(net, "--on", "@edge", "--exclude", "@db")) == {"a"}
    built = build(net, "--on", "a,b")
    a, b = built["a"], built["b"]
    assert (a / "etc/site").read_text().strip() == "ams"
    assert (b / "etc/site").read_text().strip() == "fra"


def test_network_function_defaults_and_arg_expressions(tmp_path: Path) -> None:
    net = tmp_path / "net.nix"
    net.write_text("""{ count ? 1, label ? "x" }: {
  web = { ... }: { environment.etc."c".text = "${toString count}-${label}"; };
}""")
    assert (build(net)["web"] / "etc/c").read_text().strip() == "1-x"
    built = build(net, "--arg", "count", "2 + 3", "--argstr", "label", "y")
    assert (built["web"] / "etc/c").read_text().strip() == "5-y"


def test_hostname_default_is_low_priority(tmp_path: Path) -> None:
    net = tmp_path / "net.nix"
    net.write_text("""{
  web = { ... }: { };
  db = { ... }: { networking.hostName = "database"; };
}""")
    built = build(net)
    assert (built["web"] / "etc/hostname").read_text().strip() == "web"
    assert (built["db"] / "etc/hostname").read_text().strip() == "database"


def test_what_the_configuration_traces_is_said(tmp_path: Path) -> None:
    # NixOS's deprecation warnings are traces: a user must see them, as nixos-rebuild shows them
    net = tmp_path / "net.nix"
    net.write_text("""
{
  web = { ... }: {
    environment.etc."motd".text = builtins.trace "warning: motd is deprecated" "hi";
  };
  quiet = { ... }: { };
}
""")
    done = nixlift("build", net, "--nixpkgs", STANDIN, "--json")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("nixlift: evaluation:")]
    assert said == ["nixlift: evaluation: trace: warning: motd is deprecated"], done.stderr
    json.loads(done.stdout)  # (stdout stays the data)
    # many lines: the first 40, and how many more
    noisy = tmp_path / "noisy.nix"
    body = "".join(f'  m{i} = {{ ... }}: builtins.trace "line {i}" {{ }};\n' for i in range(50))
    noisy.write_text("{\n" + body + "}\n")
    done = nixlift("eval", noisy, "--nixpkgs", STANDIN)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("nixlift: evaluation:")]
    assert len(said) == 41 and said[-1] == "nixlift: evaluation: (10 more lines not shown)"
