"""Fixtures for the stand-in nixpkgs tests: `standin` runs nix against the stand-in."""

from __future__ import annotations

import shutil

import pytest

from .helpers import STANDIN, Standin


@pytest.fixture(scope="session")
def standin() -> Standin:
    for program in ("nix-instantiate", "nix-build"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed")
    return Standin(STANDIN)
