"""Running nix-instantiate / nix-build against the stand-in nixpkgs
(testbed/src/nixlift_testbed/nixpkgs).

Every call clears NIX_PATH and passes `-I nixpkgs=<stand-in>`, so `<nixpkgs>`,
`<nixpkgs/lib>` and `<nixpkgs/nixos/...>` resolve to the stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STANDIN = Path(__file__).resolve().parents[2] / "testbed" / "src" / "nixlift_testbed" / "nixpkgs"


@dataclass(frozen=True)
class Standin:
    path: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["NIX_PATH"] = ""
        env.update(extra or {})
        return env

    def run(
        self, argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [argv[0], "-I", f"nixpkgs={self.path}", *argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(env), check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        return proc

    def eval(self, expr: str, env: Mapping[str, str] | None = None) -> object:
        """Evaluate `expr` strictly and return it decoded from JSON."""
        argv = ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr]
        out = self.run(argv, env=env).stdout
        return json.loads(out)

    def eval_error(self, expr: str) -> str:
        """Evaluate `expr`, which must fail; return the error text."""
        proc = self.run(
            ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr], check=False
        )
        assert proc.returncode != 0, f"expected an evaluation error, got {proc.stdout}"
        return proc.stderr

    def build(self, expr: str, *extra: str) -> Path:
        out = self.run(["nix-build", "--no-out-link", *extra, "-E", expr]).stdout
        return Path(out.strip().splitlines()[-1])

    def build_error(self, expr: str, *extra: str) -> str:
        proc = self.run(["nix-build", "--no-out-link", *extra, "-E", expr], check=False)
        assert proc.returncode != 0, f"expected a build failure, got {proc.stdout}"
        return proc.stderr


def nixos(modules: Sequence[Path | str], system: str | None = "builtins.currentSystem") -> str:
    """Nix expression evaluating a NixOS configuration of the given module files/expressions."""
    mods = " ".join(f"({m})" if isinstance(m, str) else str(m) for m in modules)
    sys_arg = "system = null;" if system is None else f"system = {system};"
    return f"(import <nixpkgs/nixos/lib/eval-config.nix> {{ {sys_arg} modules = [ {mods} ]; }})"
