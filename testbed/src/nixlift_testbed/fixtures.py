"""pytest fixtures for tests that need real sandbox hosts. Import them into a conftest.py:

    from nixlift_testbed.fixtures import (  # noqa: F401 (fixtures and a hook, found by name)
        SandboxFactory, pytest_collection_modifyitems, sandbox2, sandbox_factory,
    )

    def test_something(sandbox_factory: SandboxFactory) -> None:
        sandbox = sandbox_factory(3)            # h1, h2, h3, running and accepting SSH
        ssh = sandbox.ssh_argv("h1", "true")    # ssh -F DIR/ssh_config h1 true

    def test_other(sandbox2: Sandbox) -> None:  # two hosts
        ...

Every sandbox gets a fresh directory (so its own address block) and is stopped and removed at
teardown, also when the test fails. Tests marked `integration`, and every test using these
fixtures, are skipped with the reason when this machine cannot run sandbox hosts.

Needs pytest (the extra `nixlift-testbed[pytest]`); nothing else in the test bed imports this.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from nixlift_testbed.hosts import DEFAULT_PORT, Sandbox, down, up


def _why_no_sandbox() -> str | None:
    if os.geteuid() != 0:
        return "sandbox hosts need root (mount and pid namespaces)"
    for program in ("unshare", "ssh", "ssh-keygen", "nix-store", "nix-copy-closure"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    if shutil.which("sshd") is None and not os.access("/usr/sbin/sshd", os.X_OK):
        return "sshd (openssh-server) is not installed"
    return None


#: why sandbox hosts cannot run here, or None
SKIP_REASON = _why_no_sandbox()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked `integration` when sandbox hosts cannot run here.

    (Several conftests may import this hook; a test already skipped for the reason is left.)
    """
    if SKIP_REASON is None:
        return
    reason = f"integration test skipped: {SKIP_REASON}"
    for item in items:
        if "integration" not in item.keywords:
            continue
        if any(m.kwargs.get("reason") == reason for m in item.iter_markers("skip")):
            continue
        item.add_marker(pytest.mark.skip(reason=reason))


class SandboxFactory(Protocol):
    def __call__(
        self, count: int, *, port: int = DEFAULT_PORT, shaped: str | None = None
    ) -> Sandbox: ...


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    """`make(count)` starts a sandbox of `count` hosts in a fresh directory; torn down after.
    `make(count, shaped="10mbit")`: behind a shaped link (`nixlift_testbed.link`)."""
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    made: list[Path] = []

    def make(count: int, *, port: int = DEFAULT_PORT, shaped: str | None = None) -> Sandbox:
        directory = tmp_path_factory.mktemp("sandbox")
        made.append(directory)  # before up: a half-started sandbox is torn down too
        return asyncio.run(up(directory, count, port=port, shaped=shaped))

    yield make

    failures: list[BaseException] = []
    for directory in reversed(made):
        try:
            asyncio.run(down(directory, purge=True))
        except Exception as e:  # tear the others down anyway
            failures.append(e)
    if failures:
        raise failures[0]


@pytest.fixture
def sandbox2(sandbox_factory: SandboxFactory) -> Sandbox:
    """A sandbox of two hosts, h1 and h2."""
    return sandbox_factory(2)
