"""Local sandbox hosts (namespaces + sshd on 127.77.B.N) for nixlift's demo and tests.

Every host has root and two users who are not root, both logging in with the sandbox's key:
`deploy` (DEPLOY_USER, `Sandbox.deploy_user`) with passwordless sudo, and `admin` (ADMIN_USER,
`Sandbox.admin_user`) whose sudo asks for ADMIN_PASSWORD (`Sandbox.admin_password`,
"nixlift-test-password"); the host's own nix-daemon serves them its store.

See `nixlift_testbed.hosts` for what a host offers, `nixlift-sandbox` (`nixlift_testbed.cli`)
for the command, and `nixlift_testbed.fixtures` for pytest fixtures.
"""

from nixlift_testbed.demo import standin_nixpkgs, standin_peer, write_network
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.hosts import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DEFAULT_PORT,
    DEPLOY_USER,
    BlockClaims,
    HostStatus,
    Sandbox,
    SandboxHost,
    default_directory,
    down,
    load,
    status,
    up,
)

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "DEFAULT_PORT",
    "DEPLOY_USER",
    "BlockClaims",
    "HostStatus",
    "Sandbox",
    "SandboxError",
    "SandboxHost",
    "default_directory",
    "down",
    "load",
    "standin_nixpkgs",
    "standin_peer",
    "status",
    "up",
    "write_network",
]
