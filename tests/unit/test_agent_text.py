"""The agent's JSON strings of whole files (`text_file` in agent.sh: activation logs, history),
run by this machine's sh: what nixlift decodes is the file's text, less control characters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_agent_wait import function


def text_file(path: Path) -> str:
    # as every action uses it: in a command substitution, inside the answer's JSON
    script = function("text_file") + 'printf \'{"log": %s}\\n\' "$(text_file "$1")"'
    done = subprocess.run(["sh", "-c", script, "sh", str(path)], capture_output=True, check=True)
    assert done.stdout.count(b"\n") == 1, done.stdout  # one line: the agent's answer
    log: str = json.loads(done.stdout)["log"]
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
def test_a_file_becomes_the_json_string_of_its_text(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "log"
    path.write_bytes(content)
    assert text_file(path) == expected


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
