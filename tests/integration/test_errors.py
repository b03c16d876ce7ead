"""Bad input: a clear error naming the file, host or option, a non-zero exit, and no host changed
that should not have been."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import (
    activations,
    current_system,
    deploy_json,
    err,
    has_path,
    hint,
    nixlift,
    write_network,
)

from nixlift_testbed import Sandbox

pytestmark = pytest.mark.integration


def untouched(sb: Sandbox) -> bool:
    return all(activations(h) == [] and current_system(h) is None for h in sb.hosts)


def test_syntax_error_names_file_and_line(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, '  h1 = { ... }: { networking.hostName = "x" };')
    done = nixlift("deploy", net)
    assert done.returncode == 2
    assert "syntax error" in done.stderr
    line = next(i for i, text in enumerate(net.read_text().splitlines(), 1) if '"x" }' in text)
    assert f"at {net}:{line}:" in done.stderr  # the Nix error with file and line
    assert "hint:" in done.stderr
    assert "Traceback" not in done.stderr
    assert untouched(sb)


def test_missing_network_file(tmp_path: Path) -> None:
    done = nixlift("deploy", tmp_path / "nope.nix")
    assert done.returncode == 2
    assert f"network file {tmp_path / 'nope.nix'} does not exist" in done.stderr


def test_option_that_does_not_exist(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, '  h1 = { ... }: { deployment.targtHost = "h1"; };')
    done = nixlift("deploy", net)
    assert done.returncode == 2
    assert "deployment.targtHost" in done.stderr and "does not exist" in done.stderr
    assert str(net) in done.stderr
    assert untouched(sb)


def test_option_of_the_wrong_type(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, '  h1 = { ... }: { deployment.targetPort = "ssh"; };')
    done = nixlift("deploy", net)
    assert done.returncode == 2
    assert "deployment.targetPort" in done.stderr and "is not of type" in done.stderr
    assert untouched(sb)


def test_unknown_machine_in_on(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(2)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };\n  h2 = { ... }: { };")
    done = nixlift("deploy", net, "--on", "h1,h9")
    assert done.returncode == 2
    assert "'h9' matches no machine" in done.stderr and "h1, h2" in done.stderr
    assert untouched(sb)
    done = nixlift("deploy", net, "--on", "h*", "--exclude", "h*")
    assert done.returncode == 2 and "leaves no machine" in done.stderr


def test_unknown_deployment_name(tmp_path: Path) -> None:
    done = nixlift("deploy", "-d", "nope", env={"NIXLIFT_REGISTRY": str(tmp_path / "r.json")})
    assert done.returncode == 2
    assert "no deployment named 'nope'" in done.stderr


def test_no_nixpkgs_says_where_to_get_one(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, "  h1 = { ... }: { };", nixpkgs=False)
    done = nixlift("eval", net, env={"NIX_PATH": ""})
    assert done.returncode == 2
    assert "--nixpkgs" in done.stderr and "network.nixpkgs" in done.stderr


def test_unreachable_host_is_named_and_the_others_still_deploy(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    asyncio.run(sb.host("h2").stop())
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };\n  h2 = { ... }: { };")
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "ok" and current_system(sb.host("h1")) == hosts["h1"]["system"]
    assert hosts["h2"]["status"] == "failed"
    assert "cannot reach h2" in err(hosts["h2"])
    assert "sshd running" in hint(hosts["h2"])
    assert "[h2]" in done.stderr and "1 of 2 hosts succeeded" in done.stderr


def test_build_failure_activates_nothing_for_that_host(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { pkgs, ... }: {
    environment.systemPackages =
      [ (pkgs.runCommand "broken" { } "echo the-build-broke >&2; exit 3") ];
  };
  h2 = { ... }: { };
""",
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "failed" and "building h1" in err(hosts["h1"])
    assert not hosts["h1"]["copied"] and not hosts["h1"]["activated"]
    assert "the-build-broke" in done.stderr  # the build log's tail reaches the person
    # no system is claimed for a host whose system was never built
    assert hosts["h1"]["system"] is None
    evaluated = json.loads(nixlift("eval", net, "--json").stdout)["machines"]
    wanted = next(m["out_path"] for m in evaluated if m["name"] == "h1")
    assert activations(sb.host("h1")) == [] and not has_path(sb.host("h1"), wanted)
    assert hosts["h2"]["status"] == "ok" and len(activations(sb.host("h2"))) == 1


def test_failed_activation_is_reported_with_its_output(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { standin.activation.exitCode = 4; };
  h2 = { ... }: { };
""",
    )
    done, hosts = deploy_json(net, "--no-auto-rollback")
    assert done.returncode == 1
    assert "switch-to-configuration switch on h1 failed with exit status 4" in err(hosts["h1"])
    assert hosts["h1"]["status"] == "failed"
    assert hosts["h2"]["status"] == "ok"


def test_evaluation_failure_in_one_machine_changes_no_host(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { };
  h2 = { ... }: { assertions = [ { assertion = false; message = "h2 is not ready"; } ]; };
""",
    )
    done = nixlift("deploy", net)
    assert done.returncode == 2
    assert "h2 is not ready" in done.stderr
    assert untouched(sb)


def test_eval_json_never_shows_key_text(tmp_path: Path) -> None:
    net = write_network(
        tmp_path,
        None,
        """
  h1 = { ... }: { deployment.keys.db.text = "hunter2-secret"; };
""",
    )
    done = nixlift("eval", net, "--json")
    assert done.returncode == 0, done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr
    key = json.loads(done.stdout)["machines"][0]["deployment"]["keys"]["db"]
    assert key["source"] == "text" and key["permissions"] == "0600"


def test_unreachable_reasons_are_told_apart(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    (tmp_path / "empty_known_hosts").write_text("")
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { deployment.sshOptions = lib.mkForce [ "-F" sb.sshConfig
    "-o" "UserKnownHostsFile=${toString ./empty_known_hosts}" ]; };
  h2 = { ... }: { deployment.targetUser = "nobody"; };
  h3 = { ... }: { deployment.targetPort = 1; };
""".replace("{ ... }: { deployment.sshOptions", "{ lib, ... }: { deployment.sshOptions"),
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert "known_hosts" in hint(hosts["h1"])  # host key unknown: never turned off
    assert "authentication failed" in hint(hosts["h2"])
    assert "sshd running" in hint(hosts["h3"])  # connection refused
    assert untouched(sb)


def test_a_machine_of_another_nixops_backend_is_refused_before_anything(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, '  web = { ... }: { deployment.targetEnv = "ec2"; };')
    done = nixlift("deploy", net)
    assert done.returncode == 2
    assert (
        "deployment.targetEnv = 'ec2'" in done.stderr and "does not create machines" in done.stderr
    )
    assert "building" not in done.stderr


@pytest.mark.parametrize(
    ("machine", "said"),
    [('"oops"', "machine 'h2' in {net} is the string \"oops\""), ("3", "is the number 3")],
)
def test_a_machine_that_is_no_module_is_named(tmp_path: Path, machine: str, said: str) -> None:
    net = write_network(tmp_path, None, f"  h1 = {{ ... }}: {{ }};\n  h2 = {machine};")
    done = nixlift("eval", net)
    assert done.returncode == 2
    assert said.format(net=net) in done.stderr, done.stderr
    assert "modules.nix" not in done.stderr and "eval.nix" not in done.stderr


def test_a_missing_nixpkgs_path_is_named(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, "  h1 = { ... }: { };", nixpkgs=False)
    done = nixlift("eval", net, "--nixpkgs", "/no/such/dir")
    assert done.returncode == 2
    assert "--nixpkgs /no/such/dir: /no/such/dir does not exist" in done.stderr
    assert "eval.nix" not in done.stderr
    done = nixlift("eval", net, "-I", "nixpkgs=nope", cwd=tmp_path)
    assert (
        done.returncode == 2 and f"-I nixpkgs=nope: {tmp_path}/nope does not exist" in done.stderr
    )


@pytest.mark.parametrize(
    "registry",
    [
        "[]",
        '{"deployments": {"web": {"args": []}}}',
        '{"deployments": {"web": {"files": "/n.nix"}}}',
    ],
)
def test_a_registry_of_the_wrong_shape_is_named_not_a_traceback(
    tmp_path: Path, registry: str
) -> None:
    path = tmp_path / "r.json"
    path.write_text(registry)
    for args in (["list"], ["deploy", "-d", "web"]):
        done = nixlift(*args, env={"NIXLIFT_REGISTRY": str(path)})
        assert done.returncode == 2, done.stderr
        assert str(path) in done.stderr and "Traceback" not in done.stderr


def test_log_dir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    net = write_network(tmp_path, None, "  h1 = { ... }: { };")
    (tmp_path / "logs").write_text("")
    done = nixlift("deploy", net, "--log-dir", tmp_path / "logs")
    assert done.returncode == 2
    assert "--log-dir" in done.stderr and "a file of that name exists" in done.stderr
    assert "Traceback" not in done.stderr


def test_odd_machine_names_keep_their_logs_inside_the_log_dir(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path / "net",
        sb,
        '  "a/b" = { ... }: { deployment.targetHost = "h1"; networking.hostName = "ab"; };\n'
        '  "../../x" = { ... }: { deployment.targetHost = "h1"; networking.hostName = "x"; };',
    )
    logs = tmp_path / "deep" / "er" / "logs"
    done = nixlift("build", net, "--log-dir", logs)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in logs.iterdir()) == ["..%2F..%2Fx.log", "a%2Fb.log"]
    assert not (tmp_path / "deep" / "x.log").exists()


def test_ssh_options_in_ssh_configs_own_spelling_copy(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    # `-o "Keyword value"`: Nix 2.8 splits NIX_SSHOPTS on spaces, which once broke every copy
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path,
        sb,
        '  h1 = { ... }: { deployment.sshOptions = [ "-o" "ServerAliveCountMax 3" ]; };',
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]
