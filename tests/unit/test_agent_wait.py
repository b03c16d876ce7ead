"""The agent's wait for a line on a FIFO (`wait_line` in agent.sh), run by this machine's sh.

Its timer must not outlive the wait holding the caller's output: an agent call's output is the
SSH session, and nixlift waits for the session to end. A timer left behind (its `sleep` started
just as the wait ended) held a confirmation's session open for the whole confirm timeout: a
host that was confirmed at once took 30 s more (seen in a fleet, about 1 host in 100)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest

AGENT = resources.files("nixlift.agent").joinpath("agent.sh").read_text()


def function(name: str) -> str:
    found = re.search(rf"^{name}\(\) {{\n.*?^}}\n", AGENT, re.MULTILINE | re.DOTALL)
    assert found, f"{name} is not in agent.sh"
    return found.group(0)


# A line is there before the wait begins, so it ends at once, as a confirmation's wait for a
# decision already made does. Each wait runs in a command substitution, which ends only when
# nothing holds its output any more.
SCRIPT = """
fifo=$1/fifo
mkfifo "$fifo"
i=0
while [ $i -lt "$2" ]; do
  i=$((i + 1))
  got=$(exec 6<>"$fifo"; printf 'ready\\n' >&6; wait_line 6 30; printf '%s' "$line")
  [ "$got" = ready ] || { echo "wait $i got '$got'"; exit 1; }
done
"""


@pytest.mark.skipif(shutil.which("mkfifo") is None, reason="no mkfifo")
def test_a_wait_that_ends_at_once_leaves_nothing_holding_the_callers_output(
    tmp_path: Path,
) -> None:
    rounds = 300
    begun = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", function("wait_line") + SCRIPT, "sh", str(tmp_path), str(rounds)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - begun
    assert done.returncode == 0, done.stdout + done.stderr
    # a few ms each; one timer left holding the output would cost 30 s
    assert elapsed < 20, f"{rounds} waits took {elapsed:.1f} s"


@pytest.mark.skipif(shutil.which("mkfifo") is None, reason="no mkfifo")
def test_a_wait_with_no_line_ends_with_timeout(tmp_path: Path) -> None:
    script = 'mkfifo "$1/f"; exec 6<>"$1/f"; wait_line 6 1; printf "%s" "$line"'
    begun = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", function("wait_line") + script, "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == "timeout"
    assert 0.9 <= time.monotonic() - begun < 5
