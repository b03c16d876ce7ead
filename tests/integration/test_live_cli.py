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
import uuid
from pathlib import Path

import pyte
import pytest
from conftest import SandboxFactory
from netkit import write_network

pytestmark = pytest.mark.integration

ROWS, COLS = 30, 110


def run_on_terminal(
    *args: str | Path, frames: list[list[str]] | None = None
) -> tuple[int, str, list[str]]:
    """Run nixlift on a terminal; its output, and the screen at the end (and, into `frames`,
    the screen as it was after each write)."""
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
    live = pyte.Screen(COLS, ROWS)
    live_stream = pyte.ByteStream(live)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
        if frames is not None:
            live_stream.feed(data)
            frames.append(list(live.display))
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


def test_live_rows_show_each_hosts_own_build(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    nonce = uuid.uuid4().hex[:8]
    net = write_network(
        tmp_path,
        sb,
        "".join(
            f"  h{i} = {{ pkgs, ... }}: {{ environment.systemPackages = [ "
            f'(pkgs.runCommand "slow-h{i}-{nonce}" {{ }} '
            f'"for s in 1 2 3; do echo h{i} step $s; sleep 1; done; mkdir $out") ]; }};\n'
            for i in (1, 2, 3)
        ),
    )
    frames: list[list[str]] = []
    code, _, _ = run_on_terminal("build", net, "--progress", "live", frames=frames)
    assert code == 0
    seen: dict[str, set[str]] = {"h1": set(), "h2": set(), "h3": set()}
    for frame in frames:
        for row in frame:
            words = row.split()
            if words and words[0] in seen:
                seen[words[0]].update(w for w in ("h1 step", "h2 step", "h3 step") if w in row)
                if "builds" in row:  # its own counter: derivations built / to build for it
                    seen[words[0]].add("counter")
    for host, steps in seen.items():
        # a row only ever showed its own host's build
        assert f"{host} step" in steps and "counter" in steps, (host, steps)
        assert not {s for s in steps if s.endswith(" step")} - {f"{host} step"}, (host, steps)
