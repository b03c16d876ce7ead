"""The demo network: a NixOps network file of the sandbox's hosts, on the stand-in nixpkgs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from nixlift_testbed.users import LOGINS


def standin_nixpkgs() -> Path:
    return Path(str(resources.files("nixlift_testbed").joinpath("nixpkgs")))


def standin_peer(name: str) -> Path:
    """The stand-in of a peer's flake: "deploy-rs" or "colmena" (see peers/README.md)."""
    return Path(str(resources.files("nixlift_testbed").joinpath("peers", name)))


def write_network(
    directory: Path,
    names: list[str],
    ssh_config: Path,
    public_key: str | None = None,
    users: Sequence[str] = LOGINS,
) -> Path:
    """The demo network file plus the JSON it reads (data stays data: no Nix text is built).
    Its machines authorize `public_key` for `users` (root and the hosts' other users)."""
    (directory / "sandbox.json").write_text(
        json.dumps(
            {
                "hosts": names,
                "sshConfig": str(ssh_config),
                "nixpkgs": str(standin_nixpkgs()),
                "users": list(users),
                **({"publicKey": public_key} if public_key else {}),
            },
            indent=2,
        )
        + "\n"
    )
    target = directory / "network.nix"
    shutil.copyfile(str(resources.files("nixlift_testbed").joinpath("network.nix")), target)
    return target
