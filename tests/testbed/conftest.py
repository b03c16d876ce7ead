"""The test bed's own tests use the integration tests' fixtures (`sandbox_factory`, `sandbox2`)
and skip rule, which live in `nixlift_testbed.fixtures`; pytest finds them here by name."""

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
