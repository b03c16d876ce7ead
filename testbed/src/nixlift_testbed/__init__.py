"""Local sandbox hosts (namespaces + sshd on 127.77.B.N) for nixlift's demo and tests.

See `nixlift_testbed.hosts` for what a host offers, `nixlift-sandbox` (`nixlift_testbed.cli`)
for the command, and `nixlift_testbed.fixtures` for pytest fixtures.
"""

from nixlift_testbed.demo import standin_nixpkgs, write_network
from nixlift_testbed.errors import SandboxError
from nixlift_testbed.hosts import (
    DEFAULT_PORT,
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
    "DEFAULT_PORT",
    "BlockClaims",
    "HostStatus",
    "Sandbox",
    "SandboxError",
    "SandboxHost",
    "default_directory",
    "down",
    "load",
    "standin_nixpkgs",
    "status",
    "up",
    "write_network",
]
