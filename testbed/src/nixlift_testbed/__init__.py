"""Local sandbox hosts (namespaces + sshd on 127.77.B.N) for the demo and the tests."""

from nixlift_testbed.cli import standin_nixpkgs
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
]
