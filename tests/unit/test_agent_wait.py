"""The agent's wait for a line on a FIFO (`wait_line` in agent.sh) and its reading of a status or
decision (`written_line`), run by this machine's sh (and bash, NixOS's sh).

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

#: the shells an agent meets: this machine's sh (dash here), and bash as NixOS's /bin/sh runs
#: (POSIX mode), which waits with its own `read -t` instead of a timer
SHELLS = [["sh"]] + ([["bash", "--posix"]] if shutil.which("bash") else [])


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
@pytest.mark.parametrize("shell", SHELLS, ids=" ".join)
def test_a_wait_that_ends_at_once_leaves_nothing_holding_the_callers_output(
    tmp_path: Path, shell: list[str]
) -> None:
    rounds = 300
    begun = time.monotonic()
    done = subprocess.run(
        [*shell, "-c", function("wait_line") + SCRIPT, "sh", str(tmp_path), str(rounds)],
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
@pytest.mark.parametrize("shell", SHELLS, ids=" ".join)
def test_a_wait_with_no_line_ends_with_timeout(tmp_path: Path, shell: list[str]) -> None:
    script = 'mkfifo "$1/f"; exec 6<>"$1/f"; wait_line 6 1; printf "%s" "$line"'
    begun = time.monotonic()
    done = subprocess.run(
        [*shell, "-c", function("wait_line") + script, "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == "timeout"
    assert 0.9 <= time.monotonic() - begun < 5


@pytest.mark.parametrize(
    ("content", "written"),
    [
        (None, None),  # not there yet
        (b"", None),  # opened by its writer, nothing written yet
        (b'{"outcome": "confir', None),  # half written: no line end yet
        (b"0\n", "0"),
        (b'{"outcome": "confirmed", "reason": null}\n', '{"outcome": "confirmed", "reason": null}'),
    ],
)
def test_a_status_or_decision_is_taken_once_its_whole_line_is_there(
    tmp_path: Path, content: bytes | None, written: str | None
) -> None:
    """DIR/status and DIR/outcome are written in place (no mv), so a reader that comes while
    one is being written must see "not yet" and wait for its notification."""
    path = tmp_path / "outcome"
    if content is not None:
        path.write_bytes(content)
    script = (
        function("written_line") + 'if written_line "$1" v; then printf "%s" "$v"; else exit 3; fi'
    )
    done = subprocess.run(["sh", "-c", script, "sh", str(path)], capture_output=True, text=True)
    if written is None:
        assert done.returncode == 3, done
    else:
        assert (done.returncode, done.stdout) == (0, written)


@pytest.mark.skipif(not shutil.which("bash") or not shutil.which("mkfifo"), reason="no bash")
def test_bash_waits_without_a_timer(tmp_path: Path) -> None:
    """As NixOS's sh, bash waits with its own read: with no `sleep` to be found it still waits
    its whole time (a timer that could not start would end the wait at once)."""
    subprocess.run(["mkfifo", str(tmp_path / "f")], check=True)
    script = 'exec 6<>"$1/f"; wait_line 6 1; printf "%s" "$line"'
    bash = str(shutil.which("bash"))
    begun = time.monotonic()
    done = subprocess.run(
        [bash, "--posix", "-c", function("wait_line") + script, "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(tmp_path / "none")},
    )
    assert (done.returncode, done.stdout) == (0, "timeout"), done.stderr
    assert 0.9 <= time.monotonic() - begun < 5
