"""What users get: the nixlift wheel holds the product only (no sandbox, no stand-in nixpkgs),
with its man page and license; the sdist holds the whole project (tests, examples, docs); the
committed man page is the parser's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: what a checkout has that no distribution should
_NOT_SHIPPED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", ".*_cache", "result*"
)


def test_the_wheel_holds_the_product_and_nothing_of_the_test_bed(tmp_path: Path) -> None:
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    tree = tmp_path / "tree"
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        tree.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    for name in ("src", "man"):
        shutil.copytree(ROOT / name, tree / name, ignore=_NOT_SHIPPED)
    built = subprocess.run(
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
        text=True,
        cwd=tmp_path,
    )
    assert "deprecat" not in (built.stdout + built.stderr).lower()
    [wheel] = tmp_path.glob("nixlift-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # man finds share/man beside the bin/ the script lands in (a venv's, ~/.local's)
    assert "nixlift-0.1.0.data/data/share/man/man1/nixlift.1" in names
    assert "nixlift-0.1.0.dist-info/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read("nixlift-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "Requires-Dist: shtab" in metadata
    assert "nixlift/agent/agent.sh" in names and "nixlift/nix/eval.nix" in names
    assert "nixlift/nix/deployment.nix" in names
    for name in names:
        assert "sandbox" not in name and "testbed" not in name and "standin" not in name, name
        assert not name.endswith("init.sh"), name
    assert not any("nixpkgs/" in n for n in names)


def test_the_sdist_holds_tests_examples_docs_and_the_packaging(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=_NOT_SHIPPED)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", tmp_path, tree],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert "deprecat" not in (built.stdout + built.stderr).lower()
    [sdist] = tmp_path.glob("nixlift-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for name in (
        "LICENSE",
        "README.md",
        "man/nixlift.1",
        "examples/rpi.nix",
        "docs/json.md",
        "docs/architecture.md",
        "tests/unit/test_packaging.py",
        "tests/integration/netkit.py",
        "testbed/pyproject.toml",
        "package.nix",
        "default.nix",
        "flake.nix",
        "src/nixlift/schemas/deploy.json",
    ):
        assert name in names, name
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_the_committed_man_page_is_the_parsers() -> None:
    """man/nixlift.1 says what --help says; regenerate it with
    `python -m nixlift.cli.manpage > man/nixlift.1` when this fails."""
    from nixlift.cli.manpage import page

    def body(text: str) -> list[str]:
        # the .TH line carries the day it was generated
        return [line for line in text.splitlines() if not line.startswith(".TH ")]

    committed = (ROOT / "man" / "nixlift.1").read_text()
    assert body(committed) == body(page()), (
        "man/nixlift.1 is not the parser's: run "
        "`.venv/bin/python -m nixlift.cli.manpage > man/nixlift.1` and commit it"
    )
    assert committed.startswith('.TH NIXLIFT "1" ')
