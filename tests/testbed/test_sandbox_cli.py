"""`nixlift-sandbox`: the console script, its arguments and how it reports errors (no hosts)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from nixlift_testbed import cli


def test_the_console_script_is_the_test_beds() -> None:
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert scripts["nixlift-sandbox"] == "nixlift_testbed.cli:main"
    assert "nixlift_testbed" not in scripts.get("nixlift", "")


def test_arguments() -> None:
    parser = cli.build_parser()
    up = parser.parse_args(["up", "3", "--port", "2300", "--dir", "/tmp/x"])
    assert (up.sandbox_command, up.count, up.port, up.dir) == ("up", 3, 2300, "/tmp/x")
    assert parser.parse_args(["up", "1"]).port == 2222
    down = parser.parse_args(["down", "--purge"])
    assert (down.sandbox_command, down.purge, down.dir) == ("down", True, None)
    status = parser.parse_args(["status", "--json"])
    assert (status.sandbox_command, status.json) == ("status", True)
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--dir", str(tmp_path / "none")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: there is no sandbox in {tmp_path / 'none'}",
        "hint: start one with `nixlift-sandbox up N` (N hosts)",
    ]
