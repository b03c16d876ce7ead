"""Which machine a derivation is built for: the derivations each system still needs, read from
the .drv files in the local store, so that a build shared by many systems can be told apart from
one machine's own (nix's log names a derivation, never the system it is for)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# In a .drv (ATerm), `("/nix/store/…drv",[` appears only in the list of input derivations;
# outputs are `("out","/nix/store/…","","")`, before them.
_INPUT_DRV = re.compile(r'\("(/nix/store/[^"]+\.drv)",\[')
_OUTPUT = re.compile(r'\("[^"]*","(/nix/store/[^"]+)"')


@dataclass(frozen=True)
class Owners:
    """For each derivation still to be built: the machines whose systems need it."""

    by_drv: Mapping[str, frozenset[str]]
    #: for each machine: how many derivations its system still needs built
    counts: Mapping[str, int]

    def of(self, drv: str) -> frozenset[str]:
        return self.by_drv.get(drv, frozenset())


def _read(drv: str) -> tuple[list[str], list[str]]:
    """A derivation's output paths and input derivations."""
    with open(drv, encoding="utf-8", errors="replace") as f:
        text = f.read()
    head = text[: text.find("],[")] if "],[" in text else ""
    return _OUTPUT.findall(head), _INPUT_DRV.findall(text)


def owners(systems: Mapping[str, str]) -> Owners:
    """`systems`: machine → its system's derivation. Only derivations with an output missing
    from the store are walked (what is built needs nothing built below it), so the walk is as
    small as the build; each .drv file is read once whichever systems share it."""
    graph: dict[str, list[str]] = {}  # to-build drv → its input drvs that are to be built too
    built: set[str] = set()  # drvs whose outputs are all here (or that are not here at all)

    def walk(top: str) -> None:
        # iterative: a chain of derivations (stdenv's stages) can be deeper than Python's stack
        inputs_of: dict[str, list[str]] = {}
        stack = [top]
        while stack:
            drv = stack[-1]
            if drv in graph or drv in built:
                stack.pop()
                continue
            if drv not in inputs_of:
                try:
                    outputs, inputs = _read(drv)
                except OSError:
                    built.add(drv)  # not here: nix will say so, for the machine that asked
                    stack.pop()
                    continue
                if outputs and all(os.path.exists(o) for o in outputs):
                    built.add(drv)
                    stack.pop()
                    continue
                inputs_of[drv] = list(dict.fromkeys(inputs))
                stack.extend(i for i in inputs_of[drv] if i not in graph and i not in built)
                continue
            graph[drv] = [i for i in inputs_of.pop(drv) if i in graph]
            stack.pop()

    by_drv: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for machine, top in systems.items():
        walk(top)
        if top not in graph:
            counts[machine] = 0
            continue
        seen: set[str] = set()
        stack = [top]
        while stack:
            drv = stack.pop()
            if drv in seen:
                continue
            seen.add(drv)
            by_drv.setdefault(drv, set()).add(machine)
            stack.extend(graph.get(drv, ()))
        counts[machine] = len(seen)
    return Owners({d: frozenset(m) for d, m in by_drv.items()}, counts)
