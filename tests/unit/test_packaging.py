"""What users get: the nixlift wheel holds the product only (no sandbox, no stand-in nixpkgs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_product_and_nothing_of_the_test_bed(tmp_path: Path) -> None:
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    tree = tmp_path / "tree"
    for name in ("pyproject.toml", "README.md"):
        tree.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(tree),
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    [wheel] = tmp_path.glob("nixlift-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nixlift/agent/agent.sh" in names and "nixlift/nix/eval.nix" in names
    assert "nixlift/nix/deployment.nix" in names
    for name in names:
        assert "sandbox" not in name and "testbed" not in name and "standin" not in name, name
        assert not name.endswith("init.sh"), name
    assert not any("nixpkgs/" in n for n in names)
