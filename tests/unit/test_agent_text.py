"""The agent's JSON strings of whole files (`text_file` in agent.sh: activation logs, history),
run by this machine's sh: what nixlift decodes is the file's text, less control characters."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_agent_wait import function

#: the shells an agent meets: this machine's sh (dash here) and bash (NixOS's /bin/sh)
SHELLS = [sh for sh in ("sh", "bash") if shutil.which(sh)]


def text_file(path: Path, shell: str = "sh") -> str:
    """The JSON string text_json sets and text_file prints (both, checked to agree), decoded."""
    script = (
        function("text_json")
        + function("text_file")
        + 'text_json v "$1"; printf \'{"log": %s, "printed": %s}\\n\' "$v" "$(text_file "$1")"'
    )
    done = subprocess.run([shell, "-c", script, "sh", str(path)], capture_output=True, check=True)
    assert done.stdout.count(b"\n") == 1, done.stdout  # one line: the agent's answer
    answer = json.loads(done.stdout)
    assert answer["log"] == answer["printed"]
    log: str = answer["log"]
    return log


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", ""),
        (b"one line\n", "one line\n"),
        (b"no newline at the end", "no newline at the end\n"),
        (b"a\tb\n", "a b\n"),
        (b'quotes " and back\\slashes \\"\n', 'quotes " and back\\slashes \\"\n'),
        (b"\x1b[1;31mred\x1b[0m\r\n\x00\x07bell\x7f\n", "[1;31mred[0m\nbell\n"),
        (b"\n\nblank lines\n\n", "\n\nblank lines\n\n"),
        ("ünïcode ✓\n".encode(), "ünïcode ✓\n"),
    ],
)
@pytest.mark.parametrize("shell", SHELLS)
def test_a_file_becomes_the_json_string_of_its_text(
    tmp_path: Path, content: bytes, expected: str, shell: str
) -> None:
    path = tmp_path / "log"
    path.write_bytes(content)
    assert text_file(path, shell) == expected


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "lines",
    [
        ["activating the configuration...", "setting up /etc...", "reloading user units"],
        ["x" * 100] * 40,  # 4040 bytes: read by the shell
        ["x" * 100] * 41,  # 4141 bytes: by tr and sed, whole
        ["plain", "then a tab\there", "plain again"],
        ["plain", 'then "quoted"', "plain again"],
        ["plain", "~ and space and !#$%&'()*+,-./:;<=>?@[]^_`{|}", ""],
    ],
)
def test_plain_text_and_the_rest_read_the_same(
    tmp_path: Path, lines: list[str], shell: str
) -> None:
    """Plain text, which the shell reads itself, and text with what must be escaped or taken
    out, which tr and sed read, give the string of the same rules."""
    path = tmp_path / "log"
    path.write_text("\n".join(lines) + "\n")
    assert text_file(path, shell) == "".join(line.replace("\t", " ") + "\n" for line in lines)


def test_a_long_log_stays_whole(tmp_path: Path) -> None:
    lines = [f'line {i}: "quoted"\\\tend' for i in range(20000)]
    path = tmp_path / "log"
    path.write_text("\n".join(lines) + "\n")
    assert text_file(path) == "".join(line.replace("\t", " ") + "\n" for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/nix/store/abc-nixos-system-h1-24.05", "/nix/store/abc-nixos-system-h1-24.05"),
        ("", None),
        ("with space", None),
        ('quote"d', None),
        ("$(touch /tmp/x)", None),
        ("back\\slash", None),
    ],
)
def test_a_path_becomes_json_in_a_variable_or_null(text: str, expected: str | None) -> None:
    """json_path (the probe's and a decision's paths, set without a subshell) says what
    path_or_null says, and nothing it is given is run."""
    script = (
        function("json_path")
        + function("path_or_null")
        + 'json_path v "$1"; printf \'[%s, %s]\\n\' "$v" "$(path_or_null "$1")"'
    )
    done = subprocess.run(["sh", "-c", script, "sh", text], capture_output=True, check=True)
    assert json.loads(done.stdout) == [expected, expected]


@pytest.mark.parametrize("shell", SHELLS)
def test_plain_text_starts_no_process(tmp_path: Path, shell: str) -> None:
    """What most activations print is read without tr and sed (a process each, on every host's
    activation): with no programs to be found, plain text still becomes its string."""
    path = tmp_path / "log"
    path.write_text("activating the configuration...\nsetting up /etc...\n")
    script = function("text_json") + 'text_json v "$1"; printf \'%s\\n\' "$v"'
    argv = [str(shutil.which(shell)), "-c", script, "sh", str(path)]
    done = subprocess.run(argv, capture_output=True, env={"PATH": str(tmp_path / "none")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "activating the configuration...\nsetting up /etc...\n"
    path.write_text('a "quoted" word\n')  # the other way: tr and sed, not found here
    done = subprocess.run(argv, capture_output=True, env={"PATH": str(tmp_path / "none")})
    assert json.loads(done.stdout) != 'a "quoted" word\n'
