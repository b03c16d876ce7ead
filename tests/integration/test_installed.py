"""nixlift as installed and met at a terminal: the console script parsing a line as people type
it, its bash completion in a real bash (machine names from a network evaluated by real nix,
registered names from the registry), and its man page as man renders it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netkit import write_network

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: the console script pip installed beside this Python (not `python -m nixlift`)
NIXLIFT = Path(sys.executable).parent / "nixlift"


def installed(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NIXLIFT, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NIX_CONFIG": "substituters =\n", **(env or {})},
        timeout=300,
        check=False,
    )


def two_machines(directory: Path) -> Path:
    """h1 and h2, buildable with the stand-in nixpkgs; no host is ever reached."""
    return write_network(directory, None, "  h1 = { ... }: { };\n  h2 = { ... }: { };")


def test_the_installed_command_takes_the_goal_after_options(tmp_path: Path) -> None:
    net = two_machines(tmp_path)
    done = installed("deploy", net.name, "--on", "h1", "build", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["command"] == "deploy" and [h["name"] for h in doc["hosts"]] == ["h1"]
    assert doc["hosts"][0]["system"].endswith("-nixos-system-h1-24.05.standin")

    # -q before or after the command: the system path on stdout and not a word of progress
    for quiet in (("-q", "deploy", net.name), ("deploy", net.name, "-q", "--color", "never")):
        done = installed(*quiet, "build", "--on", "h2", cwd=tmp_path)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert done.stdout.strip().endswith("-nixos-system-h2-24.05.standin")

    wrong = installed("deploy", net.name, "--on", "h1", "swtich", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "unknown goal 'swtich' (did you mean 'switch'?)" in wrong.stderr
    both = installed("deploy", net.name, "--build-only", "--test", cwd=tmp_path)
    assert both.returncode == 2
    assert "conflicting goals: --build-only and --test" in both.stderr

    alone = installed(cwd=tmp_path)
    assert alone.returncode == 2 and "commands:" in alone.stderr and "deploy" in alone.stderr
    assert installed("-V", cwd=tmp_path).stdout.startswith("nixlift ")


# What bash does on TAB, without a terminal: the completion function of the script
# `nixlift completions bash` printed, called with the line split into COMP_WORDS.
_COMPLETE = r"""
source "$1"
COMP_CWORD=$2
shift 2
COMP_WORDS=("$@")
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
complete -p nixlift >/dev/null
_shtab_nixlift nixlift "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completions") / "nixlift.bash"
    done = installed("completions", "bash", cwd=path.parent)
    assert done.returncode == 0, done.stderr
    path.write_text(done.stdout)
    return path


def complete(
    script: Path, *words: str, cwd: Path, at: int = -1, env: dict[str, str] | None = None
) -> list[str]:
    """What a real bash offers for `words[at]` (the last word by default: the line typed so
    far), the program's name left out of `words`."""
    index = (at % len(words)) + 1
    bash = shutil.which("bash")
    assert bash
    done = subprocess.run(
        [
            bash,
            "--norc",
            "--noprofile",
            "-c",
            _COMPLETE,
            "bash",
            script,
            str(index),
            "nixlift",
            *words,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        # the script calls back `nixlift`, found on PATH as a shell finds it
        env={**os.environ, "PATH": f"{NIXLIFT.parent}:{os.environ['PATH']}", **(env or {})},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_the_machines_of_a_network(bash_script: Path, tmp_path: Path) -> None:
    net = two_machines(tmp_path).name
    assert complete(bash_script, "deploy", net, "--on", "", cwd=tmp_path) == ["h1", "h2"]
    # in the middle of a line, with the network after the word completed
    assert complete(bash_script, "deploy", "--on", "h", net, at=2, cwd=tmp_path) == ["h1", "h2"]
    # a comma-separated list goes on with the names not given yet
    assert complete(bash_script, "deploy", net, "--on", "h1,", cwd=tmp_path) == ["h1,h2"]
    assert complete(bash_script, "info", net, "--exclude", "h2", cwd=tmp_path) == ["h2"]
    assert complete(bash_script, "ssh", "h", cwd=tmp_path, env=_one_registered(tmp_path, net)) == [
        "h1",
        "h2",
    ]


def test_bash_completes_the_machines_of_a_flake(bash_script: Path, tmp_path: Path) -> None:
    from flakekit import write_flake

    fleet = tmp_path / "fleet"
    write_flake(
        fleet,
        None,
        """{
      nixosConfigurations.alpha = nixpkgs.lib.nixosSystem { inherit system; modules = [ ]; };
      nixosConfigurations.beta = nixpkgs.lib.nixosSystem { inherit system; modules = [ ]; };
    }""",
    )
    offered = complete(bash_script, "deploy", "--flake", str(fleet), "--on", "", cwd=tmp_path)
    assert offered == ["alpha", "beta"]
    # the flake found from the current directory, as a deploy would find it
    assert complete(bash_script, "ssh", "b", cwd=fleet) == ["beta"]


def _one_registered(tmp_path: Path, net: str) -> dict[str, str]:
    env = {"NIXLIFT_REGISTRY": str(tmp_path / "registry.json")}
    created = installed("create", net, "-d", "pair", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    return env


def test_bash_completes_registered_names_commands_goals_and_options(
    bash_script: Path, tmp_path: Path
) -> None:
    net = two_machines(tmp_path).name
    env = _one_registered(tmp_path, net)
    assert complete(bash_script, "deploy", "-d", "", cwd=tmp_path, env=env) == ["pair"]
    # the machines of a registered name
    assert complete(bash_script, "deploy", "-d", "pair", "--on", "", cwd=tmp_path, env=env) == [
        "h1",
        "h2",
    ]
    assert complete(bash_script, "de", cwd=tmp_path) == ["deploy", "delete"]
    assert complete(bash_script, "deploy", net, "dry", cwd=tmp_path) == ["dry-activate"]
    offered = complete(bash_script, "deploy", net, "--build-p", cwd=tmp_path)
    assert offered == ["--build-parallel"]
    assert complete(bash_script, "completions", "", cwd=tmp_path) == ["bash", "zsh", "fish"]
    # a network that cannot be evaluated offers nothing, and prints no error on the terminal
    (tmp_path / "broken.nix").write_text("{ h1 = ")
    assert complete(bash_script, "deploy", "broken.nix", "--on", "", cwd=tmp_path) == []


def test_fish_completes_the_machines_of_a_network(tmp_path: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed (scripts/install.sh installs it)")
    net = two_machines(tmp_path).name
    script = tmp_path / "nixlift.fish"
    done = installed("completions", "fish", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    script.write_text(done.stdout)

    def complete(line: str) -> list[str]:
        # fish's own `complete -C LINE`: what TAB offers at the end of LINE, with descriptions
        asked = subprocess.run(
            [fish, "--no-config", "-c", 'source $argv[1]; complete -C "$argv[2]"', script, line],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{NIXLIFT.parent}:{os.environ['PATH']}"},
            timeout=120,
            check=False,
        )
        assert asked.returncode == 0, asked.stderr
        return [row.split("\t")[0] for row in asked.stdout.splitlines()]

    assert complete(f"nixlift deploy {net} --on ") == ["h1", "h2"]
    assert complete(f"nixlift deploy {net} dry") == ["dry-activate"]
    assert complete("nixlift de") == ["delete", "deploy"]


def test_the_zsh_script_is_generated_with_the_callbacks(tmp_path: Path) -> None:
    done = installed("completions", "zsh", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("#compdef nixlift")
    assert "__complete machines" in done.stdout and "dry-activate" in done.stdout
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (scripts/install.sh installs it)")
    # zsh's completion system needs a terminal to be driven; here it must at least parse
    path = tmp_path / "_nixlift"
    path.write_text(done.stdout)
    checked = subprocess.run([zsh, "-n", path], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_man_renders_the_manual_page(tmp_path: Path) -> None:
    page = ROOT / "man" / "nixlift.1"
    man = shutil.which("man")
    if man:
        argv = [man, "--warnings", "-l", str(page)]
    else:  # no man-db: groff is what man would run
        groff = shutil.which("groff")
        assert groff, "neither man nor groff: scripts/install.sh installs man-db"
        argv = [groff, "-man", "-Tutf8", "-ww", str(page)]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = done.stdout
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXAMPLES", "EXIT STATUS", "ENVIRONMENT"):
        assert f"\n{heading}\n" in text, heading
    assert "nixlift - build NixOS systems here" in text
    assert "nixlift deploy -d web --on 'web-*' boot" in text
    assert "--build-parallel N" in text and "--color WHEN" in text
