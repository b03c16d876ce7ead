"""nixlift's deployment options module (src/nixlift/nix/deployment.nix) on the NixOS side: what a
host is given for its keys. No real NixOS runs here, so this checks what the configuration asks
for: the `keys` group, `<name>-key` services and path units, the activation snippet."""

from __future__ import annotations

from pathlib import Path

from .helpers import Standin, nixos

DEPLOYMENT = Path(__file__).resolve().parents[2] / "src" / "nixlift" / "nix" / "deployment.nix"

KEYS = """
{ ... }: {
  _module.args.name = "db1";
  deployment.keys.db-password = {
    text = "never-read-here"; user = "postgres"; group = "keys"; permissions = "0640";
  };
  deployment.keys.vpn = {
    keyCommand = [ "pass" "vpn" ]; destDir = "/var/keys"; name = "wg.key";
    uploadAt = "post-activation";
  };
}
"""


def config(standin: Standin, module: str, attr: str) -> object:
    return standin.eval(f"{nixos([DEPLOYMENT, module])}.config.{attr}")


def test_keys_get_a_group_units_and_owners_on_the_host(standin: Standin) -> None:
    assert config(standin, KEYS, "users.groups.keys.name") == "keys"
    services = config(standin, KEYS, "systemd.services")
    assert isinstance(services, dict) and sorted(services) == ["db-password-key", "vpn-key"]
    db = services["db-password-key"]
    assert db["serviceConfig"]["Restart"] == "always"
    assert db["serviceConfig"]["TimeoutStartSec"] == "infinity"
    # (escapeShellArg leaves plain paths unquoted, as nixpkgs' does)
    assert (
        db["preStart"].replace("'", "")
        == "while [ ! -e /run/keys/db-password ]; do sleep 0.1; done"
    )
    assert db["script"].replace("'", "") == "while [ -e /run/keys/db-password ]; do sleep 1; done"
    paths = config(standin, KEYS, "systemd.paths")
    assert isinstance(paths, dict)
    assert paths["vpn-key"]["pathConfig"] == {"PathExists": "/var/keys/wg.key"}
    assert paths["vpn-key"]["wantedBy"] == ["paths.target"]
    script = config(standin, KEYS, "system.activationScripts.nixlift-keys")
    assert isinstance(script, dict)
    assert script["deps"] == ["users"]
    assert "chown root:keys /run/keys" in script["text"]
    text = script["text"].replace("'", "")
    assert "chown postgres:keys /run/keys/db-password" in text
    assert "chmod 0640 /run/keys/db-password" in text
    # keys sent after activation get their owner when they are written, not here
    assert "wg.key" not in script["text"]


def test_a_machine_without_keys_gets_none_of_it(standin: Standin) -> None:
    plain = '{ ... }: { _module.args.name = "web1"; }'
    assert config(standin, plain, "systemd.services") == {}
    assert config(standin, plain, "users.groups") == {}


def test_a_key_with_two_sources_is_refused(standin: Standin) -> None:
    both = """{ ... }: { _module.args.name = "db1";
      deployment.keys.k = { text = "a"; keyCommand = [ "b" ]; }; }"""
    error = standin.eval_error(f"{nixos([DEPLOYMENT, both])}.config.system.build.toplevel")
    assert "db1: exactly one of deployment.keys.k.text, .keyFile and .keyCommand" in error
