"""The README as a newcomer follows it: every command it shows is one nixlift accepts, and the
ones that need no hardware of the reader's own run as written, from the repository root."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netkit import STANDIN

from nixlift.cli.options import from_namespace
from nixlift.cli.parser import build_parser, split_remote_command
from nixlift.nix.platforms import binfmt_systems

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def shell_blocks() -> dict[str, list[str]]:
    """The README's ```sh blocks by the heading above them, as command lines (continuations
    joined, comments dropped)."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    inside = False
    for line in README.splitlines():
        if line.startswith("#") and not inside:
            heading = line.lstrip("#").strip()
        elif line.strip() == "```sh":
            inside = True
            blocks.setdefault(heading, [])
        elif line.strip() == "```" and inside:
            inside = False
        elif inside:
            lines = blocks[heading]
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + line.strip()
            else:
                lines.append(line)
    return {h: [c for c in (_uncommented(x) for x in ls) if c] for h, ls in blocks.items()}


def _uncommented(line: str) -> str:
    # a comment starts at a `#` after a space (not `.#host`); the README quotes no ` #`
    return re.sub(r"(^|\s)#.*$", "", line).strip()


def test_every_nixlift_command_in_the_readme_parses() -> None:
    commands = [c for cs in shell_blocks().values() for c in cs if c.startswith("nixlift ")]
    assert len(commands) >= 10
    parser = build_parser()
    for command in commands:
        words = shlex.split(command)[1:]
        words = [w for w in words if w not in ("&", "&&")]
        if ">" in words:
            words = words[: words.index(">")]
        words, remote = split_remote_command(words)
        try:
            from_namespace(parser.parse_args(words), remote)
        except SystemExit as e:  # argparse's usage error
            pytest.fail(f"README: `{command}` is not a command nixlift accepts ({e})")


def _run_from_root(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _env(home: Path) -> dict[str, str]:
    # as a new shell after the set-up command: nixlift and nixlift-sandbox on the PATH
    bin_dir = Path(sys.executable).parent
    return {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "NIX_CONFIG": "substituters =\n",
        "NIXLIFT_REGISTRY": str(home / "registry.json"),
    }


def test_try_it_by_hand_runs_as_written(tmp_path: Path) -> None:
    commands = shell_blocks()["Try it by hand"]
    assert commands[0].startswith("nixlift-sandbox up") and commands[-1] == "nixlift-sandbox down"
    env = _env(tmp_path)
    try:
        for command in commands:
            done = _run_from_root(command, env)
            assert done.returncode == 0, f"`{command}`:\n{done.stderr}"
            if "/etc/motd" in command:
                assert "[h1] Welcome to h1, deployed by nixlift." in done.stdout
            if command.startswith("nixlift info"):
                assert done.stdout.count("up to date") == 2, done.stdout
    finally:
        _run_from_root("nixlift-sandbox down --purge", env)


@pytest.mark.skipif(
    "aarch64-linux" not in binfmt_systems(),
    reason="no binfmt handler for aarch64 (qemu-user-static + binfmt_misc)",
)
def test_the_pi_quickstart_builds_as_written(tmp_path: Path) -> None:
    # everything up to the Pi itself: the deploy and info lines need a Pi (they parse, above)
    # as after the quickstart's steps 2 and 3: a nixpkgs on NIX_PATH, aarch64 in extra-platforms
    env = {**_env(tmp_path), "NIX_PATH": f"nixpkgs={STANDIN}"}
    env["NIX_CONFIG"] += "extra-platforms = aarch64-linux\n"
    ran = 0
    for command in shell_blocks()["Quickstart: a Raspberry Pi"]:
        if command.split()[:2] in (["nixlift", "create"], ["nixlift", "build"]):
            done = _run_from_root(command, env)
            assert done.returncode == 0, f"`{command}`:\n{done.stderr}"
            ran += 1
            if command.startswith("nixlift build"):
                assert re.search(r"/nix/store/\S+-nixos-system-pi3-", done.stdout), done.stdout
    assert ran == 2


def test_the_readme_links_point_at_files_that_exist() -> None:
    for target in re.findall(r"\]\(((?!https?://|#)[^)]+)\)", README):
        assert (ROOT / target).exists(), target
    assert shutil.which("bash")
