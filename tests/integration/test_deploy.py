"""End to end: real nix builds, real ssh to sandbox hosts, real switch-to-configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import (
    activations,
    current_system,
    deploy_json,
    has_path,
    nixlift,
    profile_system,
    write_network,
)

from nixlift_testbed import SandboxHost

pytestmark = pytest.mark.integration


def logins(host: SandboxHost) -> int:
    return host.log_file.read_text().count("Accepted publickey")


TWO = """
  h1 = { config, pkgs, ... }: { environment.etc."role".text = "first"; };
  h2 = { config, pkgs, ... }: { environment.etc."role".text = "second"; };
"""


def test_deploy_two_hosts_then_redeploy_copies_and_activates_nothing(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path, sb, TWO.replace('"second";', '"second"; deployment.alwaysActivate = false;')
    )
    before = {h.name: logins(h) for h in sb.hosts}  # `sandbox up` logs in once to check
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    # one SSH login per host for probe, copy and activation (the ControlMaster is reused,
    # nix-copy-closure's included), and one more, new, to confirm the host can still be reached
    assert all(logins(h) == before[h.name] + 2 for h in sb.hosts)
    for name in ("h1", "h2"):
        host = sb.host(name)
        system = hosts[name]["system"]
        assert hosts[name]["status"] == "ok" and hosts[name]["copied"] and hosts[name]["activated"]
        assert current_system(host) == system
        assert profile_system(host) == system
        assert [(a["goal"], a["system"]) for a in activations(host)] == [("switch", system)]
    assert hosts["h1"]["system"] != hosts["h2"]["system"]
    # the built system carries the host's own configuration
    etc = sb.host("h2").path(hosts["h2"]["system"] + "/etc/role")
    assert etc.read_text().strip() == "second"

    done, again = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert not again["h1"]["copied"] and not again["h2"]["copied"]
    # NixOps' default alwaysActivate = true activates again; false leaves the host be
    assert again["h1"]["activated"] and len(activations(sb.host("h1"))) == 2
    assert again["h2"]["status"] == "unchanged" and not again["h2"]["activated"]
    assert len(activations(sb.host("h2"))) == 1

    info = nixlift("info", net, "--json")
    assert info.returncode == 0, info.stderr
    rows = {m["name"]: m for m in json.loads(info.stdout)["hosts"]}
    assert {m["state"] for m in rows.values()} == {"up-to-date"}


def test_goals_do_what_they_say(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(5)
    body = "".join(
        f'  h{i} = {{ ... }}: {{ environment.etc."n".text = "{i}"; }};\n' for i in range(1, 6)
    )
    net = write_network(tmp_path, sb, body)
    goals = {"h1": "build", "h2": "push", "h3": "boot", "h4": "test", "h5": "dry-activate"}
    systems = {}
    for name, goal in goals.items():
        done, hosts = deploy_json(net, goal, "--on", name)
        assert done.returncode == 0, done.stderr
        assert list(hosts) == [name]
        systems[name] = hosts[name]["system"]

    h1, h2, h3, h4, h5 = (sb.host(n) for n in goals)
    # build: built here, nothing on the host
    assert Path(systems["h1"]).exists() and not has_path(h1, systems["h1"])
    assert activations(h1) == []
    # push: copied, not activated
    assert has_path(h2, systems["h2"]) and activations(h2) == []
    assert current_system(h2) is None and profile_system(h2) is None
    # boot: profile and boot entry, not running
    assert profile_system(h3) == systems["h3"] and current_system(h3) is None
    assert [a["goal"] for a in activations(h3)] == ["boot"]
    assert (h3.read_text("/var/lib/standin/boot-default") or "").strip() == systems["h3"]
    # test: running, profile untouched
    assert current_system(h4) == systems["h4"] and profile_system(h4) is None
    assert [a["goal"] for a in activations(h4)] == ["test"]
    # dry-activate: only the record
    assert current_system(h5) is None and profile_system(h5) is None
    assert [a["goal"] for a in activations(h5)] == ["dry-activate"]


def test_nixops_goal_flags(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    done, hosts = deploy_json(net, "--copy-only")
    assert done.returncode == 0, done.stderr
    assert hosts["h1"]["copied"] and not hosts["h1"]["activated"]
    assert activations(sb.host("h1")) == []
    done = nixlift("deploy", net, "boot", "--test")
    assert done.returncode == 2 and "conflicting goals: 'boot' and --test" in done.stderr


def test_on_selects_by_name_glob_and_exclude(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { };
  h2 = { ... }: { };
  h3 = { ... }: { };
""",
    )
    done, hosts = deploy_json(net, "--on", "h[12]", "--exclude", "h1")
    assert done.returncode == 0, done.stderr
    assert list(hosts) == ["h2"]
    assert activations(sb.host("h1")) == [] and activations(sb.host("h3")) == []
    assert len(activations(sb.host("h2"))) == 1

    done, hosts = deploy_json(net, "--include", "h1", "h3")
    assert done.returncode == 0, done.stderr
    assert sorted(hosts) == ["h1", "h3"]


def test_create_then_deploy_by_name(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path / "net", sb, "  h1 = { ... }: { };", name="rpi.nix")
    env = {"NIXLIFT_REGISTRY": str(tmp_path / "registry.json")}
    created = nixlift("create", net, "-d", "rpi", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "h1" in created.stderr
    listed = nixlift("list", "--json", env=env)
    assert json.loads(listed.stdout)["deployments"][0]["files"] == [str(net)]
    # the name is not silently pointed at other files
    other = write_network(tmp_path / "other", sb, "  h1 = { ... }: { };", name="rpi.nix")
    again = nixlift("create", other, "-d", "rpi", env=env, cwd=tmp_path)
    assert again.returncode == 2 and "already registered" in again.stderr, again.stderr
    assert "--force" in again.stderr
    forced = nixlift("create", other, "-d", "rpi", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    nixlift("create", net, "-d", "rpi", "--force", env=env, cwd=tmp_path)

    # from another directory, by name only
    done, hosts = deploy_json("-d", "rpi", env=env, cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]
    info = nixlift("info", "-d", "rpi", env=env)
    assert info.returncode == 0 and "up to date" in info.stdout

    deleted = nixlift("delete", "-d", "rpi", env=env)
    assert deleted.returncode == 0
    gone = nixlift("deploy", "-d", "rpi", env=env)
    assert gone.returncode == 2
    assert "no deployment named 'rpi'" in gone.stderr and "nixlift create" in gone.stderr
    # the hosts keep what they run
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_network_function_arguments_and_require(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    (tmp_path / "extra.nix").write_text(
        '{ h1 = { ... }: { environment.etc."from-required".text = "yes"; }; }\n'
    )
    net = write_network(
        tmp_path,
        sb,
        """
  require = [ ./extra.nix ];
  h1 = { ... }: { environment.etc."colour".text = colour; };
""",
    )
    # turn the network into a function of `colour` (no default): NixOps' --argstr
    text = net.read_text().replace("let sb =", "{ colour }: let sb =", 1)
    net.write_text(text)
    missing = nixlift("eval", net)
    assert missing.returncode == 2 and "colour" in missing.stderr and "--arg" in missing.stderr
    done, hosts = deploy_json(net, "--argstr", "colour", "blue")
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]
    assert Path(system, "etc/colour").read_text().strip() == "blue"
    assert Path(system, "etc/from-required").read_text().strip() == "yes"


def test_reboot_required_is_reported_not_a_crash(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { standin.activation.exitCode = 100; };")
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert hosts["h1"]["status"] == "reboot-required" and hosts["h1"]["reboot_required"]
    assert "reboot required" in done.stderr.lower()
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_build_on_target(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { deployment.buildOnTarget = true; environment.etc."where".text = "target"; };
""",
    )
    drv = json.loads(nixlift("eval", net, "--json").stdout)["machines"][0]
    assert not Path(drv["out_path"]).exists()
    done, _ = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == drv["out_path"]
    # built there, never here
    assert not Path(drv["out_path"]).exists()


def test_the_systems_etc_files_appear_on_the_host_and_leave_with_it(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    # what the README's demo shows (`nixlift exec … -- cat /etc/motd`)
    sb = sandbox_factory(1)
    both = (
        '  h1 = { ... }: { environment.etc."motd".text = "hello from h1";'
        ' environment.etc."extra/file".text = "extra"; };'
    )
    done, _ = deploy_json(write_network(tmp_path / "a", sb, both))
    assert done.returncode == 0, done.stderr
    shown = nixlift("exec", tmp_path / "a" / "net.nix", "--", "cat", "/etc/motd", "/etc/extra/file")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["[h1] hello from h1extra"]  # no newline at the end
    one = '  h1 = { ... }: { environment.etc."motd".text = "bye"; };'
    done, _ = deploy_json(write_network(tmp_path / "b", sb, one))
    assert done.returncode == 0, done.stderr
    assert sb.host("h1").read_text("/etc/motd") == "bye"
    assert sb.host("h1").read_text("/etc/extra/file") is None  # no longer declared: removed
