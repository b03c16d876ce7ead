"""Fixtures for integration tests: real sandbox hosts (namespaces + sshd on 127.77.B.N).

    def test_something(sandbox_factory: SandboxFactory) -> None:
        sandbox = sandbox_factory(3)            # h1, h2, h3, running and accepting SSH
        ssh = sandbox.ssh_argv("h1", "true")    # ssh -F DIR/ssh_config h1 true

    def test_other(sandbox2: Sandbox) -> None:  # two hosts
        ...

Every sandbox gets a fresh directory (so its own address block) and is stopped and removed at
teardown, also when the test fails. Tests marked `integration`, and every test using these
fixtures, are skipped with the reason when this machine cannot run sandbox hosts.

The fixtures live in the test bed (`nixlift_testbed.fixtures`), so that the test bed's own
tests (tests/testbed) use the same ones; pytest finds them here by name.
"""

from __future__ import annotations

from nixlift_testbed.fixtures import (
    SKIP_REASON,
    SandboxFactory,
    pytest_collection_modifyitems,
    sandbox2,
    sandbox_factory,
)

__all__ = [
    "SKIP_REASON",
    "SandboxFactory",
    "pytest_collection_modifyitems",
    "sandbox2",
    "sandbox_factory",
]
