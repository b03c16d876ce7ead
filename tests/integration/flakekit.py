"""Helpers for flake tests: a flake whose machines reach sandbox hosts, with path: inputs (the
stand-in nixpkgs, the stand-ins of deploy-rs and colmena, nixlift's options module), offline.

A flake's inputs must be literal text in flake.nix, so the inputs' paths are written into it;
`literal` refuses any path that could mean more than itself in a Nix string. Everything else the
flake needs (the sandbox's ssh config, key, users) it reads from sandbox.json beside it.
"""

from __future__ import annotations

import json
import platform
import re
from importlib import resources
from pathlib import Path

from netkit import STANDIN

from nixlift_testbed import Sandbox, standin_peer

#: nixlift's own options module, as a flake user's input would give it
MODULE_DIR = Path(str(resources.files("nixlift.nix")))
SYSTEM = f"{platform.machine()}-linux"

_PLAIN = re.compile(r"/[A-Za-z0-9/._+-]+")


def path_url(path: Path | str) -> str:
    """`path:PATH` as a Nix string literal, for the inputs of flake.nix."""
    text = str(path)
    assert _PLAIN.fullmatch(text), f"not a plain absolute path: {text!r}"
    return f'"path:{text}"'


INPUTS = {
    "nixpkgs": f"inputs.nixpkgs.url = {path_url(STANDIN)};",
    "deploy-rs": f"inputs.deploy-rs = {{ url = {path_url(standin_peer('deploy-rs'))}; "
    'inputs.nixpkgs.follows = "nixpkgs"; };',
    "colmena": f"inputs.colmena = {{ url = {path_url(standin_peer('colmena'))}; "
    'inputs.nixpkgs.follows = "nixpkgs"; };',
    "nixlift": f"inputs.nixlift = {{ url = {path_url(MODULE_DIR)}; flake = false; }};",
}

#: what `outputs` may use: sb (sandbox.json), lib, pkgs, system, and `access`, a module that lets
#: the sandbox's key in for root and the hosts' other users (activation rewrites the keys)
_LET = """
      sb = builtins.fromJSON (builtins.readFile ./sandbox.json);
      inherit (nixpkgs) lib;
      system = sb.system;
      pkgs = nixpkgs.legacyPackages.${system};
      access = { lib, ... }: {
        services.openssh.enable = true;
        users.users = lib.genAttrs sb.users (user: {
          openssh.authorizedKeys.keys = lib.optional (sb.publicKey != null) sb.publicKey;
        });
      };
"""


def write_flake(
    directory: Path,
    sandbox: Sandbox | None,
    outputs: str,
    *,
    inputs: tuple[str, ...] = ("nixpkgs",),
    extra_inputs: str = "",
) -> Path:
    """flake.nix (and sandbox.json) in `directory`; `outputs` is the attribute set the outputs
    function returns, written with the names above in scope."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "sshConfig": str(sandbox.ssh_config) if sandbox else "/dev/null",
                "publicKey": sandbox.public_key if sandbox else None,
                "users": ["root", sandbox.deploy_user, sandbox.admin_user] if sandbox else ["root"],
                "system": SYSTEM,
                # (as netkit's: a network file beside the flake reads the same sandbox.json)
                "nixpkgs": str(STANDIN),
            }
        )
    )
    names = ", ".join(("self", *(i for i in inputs), "..."))
    text = (
        "{\n  "
        + "\n  ".join(INPUTS[i] for i in inputs)
        + ("\n  " + extra_inputs if extra_inputs else "")
        + f"\n  outputs = {{ {names} }}@inputs:\n    let{_LET}    in\n    {outputs};\n}}\n"
    )
    path = directory / "flake.nix"
    path.write_text(text)
    return path
