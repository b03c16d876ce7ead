"""Local sandbox hosts (namespaces + sshd on 127.77.B.N) for the demo and the tests."""

from nixlift.sandbox.hosts import (
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
    "SandboxHost",
    "default_directory",
    "down",
    "load",
    "status",
    "up",
]
