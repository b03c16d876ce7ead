"""Helpers for deploy tests: network files pointing at sandbox hosts, running the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from jsoncontract import validate

from nixlift_testbed import Sandbox, SandboxHost

STANDIN = Path(str(resources.files("nixlift_testbed").joinpath("nixpkgs")))

# Data reaches the network file as JSON, so no test builds Nix text from values.
_HEADER = """let sb = builtins.fromJSON (builtins.readFile ./sandbox.json); in
"""


def write_network(
    directory: Path,
    sandbox: Sandbox | None,
    body: str,
    *,
    name: str = "net.nix",
    nixpkgs: bool = True,
) -> Path:
    """A network file whose machines reach the sandbox's hosts through its ssh config.

    `body` is the inside of the top-level attribute set (machines, `network`, …)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "sshConfig": str(sandbox.ssh_config) if sandbox else "/dev/null",
                "nixpkgs": str(STANDIN),
                # the key the hosts' sshd must find in /etc/ssh/authorized_keys.d/USER, and the
                # users (root, and the sandbox's users who are not root) it must be there for
                "publicKey": sandbox.public_key if sandbox else None,
                "users": ["root", sandbox.deploy_user, sandbox.admin_user] if sandbox else ["root"],
                # for derivations that must really build in this test (not come from an earlier run)
                "nonce": uuid.uuid4().hex,
            }
        )
    )
    # As on NixOS, the system decides who may log in: every machine keeps the sandbox's key for
    # root, deploy and admin (a machine that drops root's:
    # `users.users.root.openssh.authorizedKeys.keys = lib.mkForce [ ];`).
    # One line, so that the body's line numbers stay what tests expect.
    defaults = (
        'defaults = { lib, ... }: { deployment.sshOptions = [ "-F" sb.sshConfig ];'
        " services.openssh.enable = lib.mkDefault true;"
        " users.users = lib.genAttrs sb.users (user: { openssh.authorizedKeys.keys ="
        " lib.optional (sb.publicKey != null) sb.publicKey; }); };\n"
    )
    pkgs = "network.nixpkgs = sb.nixpkgs;\n" if nixpkgs else ""
    path = directory / name
    path.write_text(_HEADER + "{\n" + pkgs + defaults + body + "\n}\n")
    return path


#: where the CLI runs unless a test says: an empty directory, not the checkout, so that nothing
#: there is taken for an argument (a `build` directory for the goal) or a configuration (the
#: checkout's own flake.nix, which nix would copy into the store)
_NEUTRAL = Path(tempfile.mkdtemp(prefix="nixlift-cwd-"))


def nixlift(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in its own process."""
    full_env = {**os.environ, "NIX_CONFIG": "substituters =\n", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "nixlift", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or _NEUTRAL,
        env=full_env,
        timeout=300,
        check=False,
    )
    if "--json" in map(str, args) and done.stdout.strip():
        validate(done.stdout)  # every --json document keeps the contract
    # a task whose failure nobody read: an error lost, whatever else the run did
    assert "exception was never retrieved" not in done.stderr, done.stderr
    return done


def deploy_json(
    *args: str | Path, **kw: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """`nixlift deploy … --json`, with the per-host results keyed by name."""
    done = nixlift("deploy", *args, "--json", **kw)
    assert done.stdout, f"no JSON on stdout; stderr:\n{done.stderr}"
    doc = json.loads(done.stdout)
    return done, {h["name"]: h for h in doc["hosts"]}


def err(host: dict[str, Any]) -> str:
    """A host's error message in a --json document ("" when it has none)."""
    error = host.get("error")
    return str(error["message"]) if error else ""


def hint(host: dict[str, Any]) -> str:
    error = host.get("error")
    return str(error.get("hint") or "") if error else ""


def by_name(doc: dict[str, Any], key: str = "hosts") -> dict[str, dict[str, Any]]:
    """A --json document's hosts (or machines) by name."""
    return {h["name"]: h for h in doc[key]}


def begun(host: SandboxHost) -> list[str]:
    """Activations that began (`GOAL SYSTEM`); each finished one also has an activations() line."""
    return (host.read_text("/var/lib/standin/activations-begun") or "").splitlines()


def activations(host: SandboxHost) -> list[dict[str, Any]]:
    """What switch-to-configuration recorded on the host, oldest first."""
    text = host.read_text("/var/lib/standin/activations.jsonl")
    return [json.loads(line) for line in (text or "").splitlines() if line.strip()]


def current_system(host: SandboxHost) -> str | None:
    return host.readlink("/run/current-system")


def profile_system(host: SandboxHost) -> str | None:
    """Where the host's system profile points, following its generation link."""
    if host.readlink("/nix/var/nix/profiles/system") is None:
        return None
    return host.resolve("/nix/var/nix/profiles/system")


def has_path(host: SandboxHost, store_path: str) -> bool:
    return host.path(store_path).exists()
