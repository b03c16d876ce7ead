"""nixlift's code on the host (hostside.sh), and the argv that runs one of its actions."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def script() -> str:
    return resources.files("nixlift.deploy").joinpath("hostside.sh").read_text(encoding="utf-8")


def argv(action: str, *args: str) -> list[str]:
    """`sh -c SCRIPT nixlift ACTION ARGS…`: every value a positional parameter, none spliced."""
    if action == "start":
        return ["sh", "-c", script(), "nixlift", action, script(), *args]
    return ["sh", "-c", script(), "nixlift", action, *args]
