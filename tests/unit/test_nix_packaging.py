"""package.nix, default.nix and flake.nix, evaluated by real Nix against the stand-in nixpkgs in
nixpkgs-standin/ (there is no nixpkgs here, so nothing is built): the wrapper's PATH has nix and
OpenSSH, the man page and completions are installed, the version is pyproject's, and the flake
has its packages, app, overlay and options module."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSPECT = Path(__file__).resolve().parent / "nixpkgs-standin" / "inspect.nix"


@pytest.fixture(scope="module")
def evaluated() -> dict[str, Any]:
    done = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", str(INSPECT), "--arg", "root", ROOT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", ["package", "default", "overlay", "flake"])
def test_every_way_in_gives_the_same_package(evaluated: dict[str, Any], how: str) -> None:
    package = {
        "package": evaluated["package"],
        "default": evaluated["default"],
        "overlay": evaluated["flake"]["overlay"],
        "flake": evaluated["flake"]["package"],
    }[how]
    assert package["pname"] == "nixlift" and package["version"] == pyproject()["version"]
    assert package["pyproject"] is True and package["mainProgram"] == "nixlift"
    assert package["license"] == pyproject()["license"] == "MIT"
    assert package["build-system"] == ["python3-setuptools"]
    # the runtime dependencies are pyproject's
    wanted = {d.split(">")[0].split("=")[0] for d in pyproject()["dependencies"]}
    assert {d.removeprefix("python3-") for d in package["dependencies"]} == wanted


def test_the_wrapper_puts_nix_and_openssh_on_path(evaluated: dict[str, Any]) -> None:
    flag, variable, separator, value = evaluated["package"]["makeWrapperArgs"]
    assert (flag, variable, separator) == ("--prefix", "PATH", ":")
    assert value.split(":") == [
        "/nix/store/00000000000000000000000000000000-nix/bin",
        "/nix/store/00000000000000000000000000000000-openssh/bin",
    ]


def test_the_man_page_and_completions_are_installed(evaluated: dict[str, Any]) -> None:
    package = evaluated["package"]
    assert package["nativeBuildInputs"] == ["install-shell-files"]
    script = package["postInstall"]
    assert "installManPage man/nixlift.1" in script
    assert "installShellCompletion --cmd nixlift" in script
    assert 'PYTHONPATH="$out/lib/python3.12/site-packages:$PYTHONPATH"' in script
    for shell in ("bash", "zsh", "fish"):
        assert f"--{shell} <($out/bin/nixlift completions {shell})" in script
    # what the build reads is in its source, and exists here
    files = {Path(f).relative_to(ROOT).as_posix() for f in package["src"]["files"]}
    assert {"man", "src", "pyproject.toml", "LICENSE", "README.md"} <= files
    assert all((ROOT / f).exists() for f in files)
    assert (ROOT / "man" / "nixlift.1").is_file()
    assert package["pythonImportsCheck"] == ["nixlift"]


def test_the_flake_outputs(evaluated: dict[str, Any]) -> None:
    flake = evaluated["flake"]
    assert flake["inputs"] == ["nixpkgs"] and flake["nixpkgsUrl"].startswith("github:NixOS/")
    for system in ("x86_64-linux", "aarch64-linux"):
        assert "default" in flake["packages"][system]
    app = flake["app"]
    assert app["type"] == "app"
    assert app["program"].endswith(f"-nixlift-{pyproject()['version']}/bin/nixlift")
    # the options module is nixlift's deployment.* options, the file network evaluation uses
    assert flake["nixosModule"] == str(ROOT / "src" / "nixlift" / "nix" / "deployment.nix")
