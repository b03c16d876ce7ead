"""The live view as a person's terminal shows it: nixlift on a pseudo-terminal, read by pyte."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest
from conftest import SandboxFactory
from netkit import write_network

pytestmark = pytest.mark.integration

ROWS, COLS = 30, 110


def run_on_terminal(*args: str | Path) -> tuple[int, str, list[str]]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "NIX_CONFIG": "substituters =\n"}
    for name in ("CI", "COLUMNS", "LINES"):  # the size comes from the terminal itself
        env.pop(name, None)
    child = subprocess.Popen(
        [sys.executable, "-m", "nixlift", *map(str, args)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = child.stdout.read().decode() if child.stdout else ""
    child.wait(timeout=60)
    screen = pyte.HistoryScreen(COLS, ROWS, history=500)
    pyte.ByteStream(screen).feed(b"".join(chunks))
    lines = ["".join(screen.buffer[y][x].data for x in range(COLS)).rstrip() for y in range(ROWS)]
    history = ["".join(c.data for c in row.values()).rstrip() for row in screen.history.top]
    return child.returncode, out, history + lines


def test_live_view_shows_a_row_per_host_and_the_summary(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { };
  h2 = { ... }: { standin.activation.exitCode = 4; };
  h3 = { ... }: { };
""",
    )
    code, out, screen = run_on_terminal("deploy", net, "--progress", "live", "--json")
    text = "\n".join(screen)
    assert code == 1, text
    # data still goes to stdout, untouched by the display
    assert {h["name"]: h["status"] for h in json.loads(out)["hosts"]} == {
        "h1": "ok",
        "h2": "rolled-back",
        "h3": "ok",
    }
    assert "2 of 3 hosts succeeded" in text
    # the failed host's block, with its error, stays in the scrollback
    assert any(line.startswith("✗ h2") and "exited with 4" in line for line in screen), text
    # the final table: one row per host with its status
    rows = {
        line.split()[0]: line for line in screen if line.split()[:1] in (["h1"], ["h2"], ["h3"])
    }
    assert "ok" in rows["h1"] and "rolled-back" in rows["h2"] and "ok" in rows["h3"]
    assert len(screen[-1]) <= COLS
