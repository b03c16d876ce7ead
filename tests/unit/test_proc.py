"""The process runner, against real processes."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nixlift import proc
from nixlift.errors import CommandError, MissingProgramError


def test_a_line_longer_than_asyncios_default_buffer() -> None:
    # nix-instantiate --json prints a network of hundreds of machines as one line
    done = asyncio.run(proc.run(["python3", "-c", "print('x' * 300000)"]))
    assert len(done.stdout) == 300001


def test_failure_carries_the_stderr_tail_and_a_hint() -> None:
    with pytest.raises(CommandError) as e:
        asyncio.run(
            proc.run(["sh", "-c", "echo bad >&2; exit 3"], what="the thing", hint="do this")
        )
    assert e.value.returncode == 3 and e.value.stderr_tail == "bad"
    assert str(e.value) == "the thing failed with exit status 3" and e.value.hint == "do this"


def _running(argv: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().replace(b"\0", b" ").decode(errors="replace").strip() == argv:
                    found.append(pid)
        except OSError:
            continue  # gone meanwhile, or not a process
    return found


def test_timeout_kills_the_whole_group() -> None:
    seconds = 3000 + os.getpid() % 1000  # a sleep no other test runs
    with pytest.raises(CommandError, match=r"did not finish within 0\.3 s"):
        asyncio.run(proc.run(["sh", "-c", f"sleep {seconds} & sleep {seconds + 1}"], timeout=0.3))
    time.sleep(0.2)
    assert _running(f"sleep {seconds}") == [] and _running(f"sleep {seconds + 1}") == []


def _held_open(seconds: str, status: int) -> list[str]:
    """A child that writes, leaves a process holding its stdout and stderr (as an SSH
    ControlMaster holds a killed client's until its channel closes), and exits."""
    script = f"echo out; echo err >&2; (sleep {seconds}; echo late >&2) & exit {status}"
    return ["sh", "-c", script]


def test_settle_ends_a_success_once_the_child_exits() -> None:
    seconds = f"3.{os.getpid() % 1000:03d}"  # a sleep no other test runs
    try:
        start = time.monotonic()
        done = asyncio.run(proc.run(_held_open(seconds, 0), settle=True))
        assert time.monotonic() - start < 2
        assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    finally:
        for pid in _running(f"sleep {seconds}"):
            os.kill(int(pid), 9)


def test_settle_reads_all_a_child_wrote_just_before_it_exited() -> None:
    # the end of nix's JSON log, as much as a pipe holds, written at once just before it exits
    seconds = f"3.{os.getpid() % 1000 + 500:03d}"
    lines = [f"@nix line {i} of the log" for i in range(2000)]
    script = (
        f"(sleep {seconds}) & exec python3 -c 'import os, sys\n"
        f"os.write(2, sys.argv[1].encode() + bytes([10]))\nos._exit(0)' '{chr(10).join(lines)}'"
    )
    try:
        done = asyncio.run(proc.run(["sh", "-c", script], settle=True))
        assert done.stderr.splitlines() == lines
    finally:
        for pid in _running(f"sleep {seconds}"):
            os.kill(int(pid), 9)


def test_settle_still_waits_for_a_failures_whole_output() -> None:
    with pytest.raises(CommandError) as e:
        asyncio.run(proc.run(_held_open("1", 3), settle=True))
    assert e.value.returncode == 3 and e.value.stderr_tail == "err\nlate"


def test_without_settle_output_held_open_is_read_to_its_end() -> None:
    done = asyncio.run(proc.run(_held_open("1", 0)))
    assert done.stderr == "err\nlate\n"


def test_missing_program_is_named() -> None:
    with pytest.raises(MissingProgramError, match="'no-such-program-x' was not found on PATH"):
        asyncio.run(proc.run(["no-such-program-x"]))


_PARENT = """
import asyncio, sys
from nixlift import proc
if sys.argv[2] == "preexec":
    proc._setpriv = lambda: None  # as on a machine without util-linux's setpriv
print("started", flush=True)
asyncio.run(proc.run(["sleep", sys.argv[1]]))
"""


@pytest.mark.parametrize("how", ["setpriv", "preexec"])
def test_a_child_dies_with_nixlift_even_when_it_is_killed(how: str) -> None:
    seconds = str(5000 + os.getpid() % 1000 + (0 if how == "setpriv" else 1000))
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, seconds, how], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None and parent.stdout.readline() == "started\n"
    deadline = time.monotonic() + 10
    while not _running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _running(f"sleep {seconds}"), "the child never started"
    parent.kill()  # SIGKILL: nixlift cleans nothing up
    parent.wait()
    deadline = time.monotonic() + 5
    while _running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _running(f"sleep {seconds}") == []


def test_started_is_called_while_the_child_runs() -> None:
    seen: list[bool] = []
    marker = f"/tmp/nl-started-{os.getpid()}"

    def started() -> None:
        # the child is running (it waits for the marker) and its output is not read yet
        seen.append(os.path.exists(marker))
        open(marker, "w").close()

    try:
        script = f"while [ ! -e {marker} ]; do sleep 0.01; done; echo done"
        done = asyncio.run(proc.run(["sh", "-c", script], started=started, timeout=10))
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    assert seen == [False] and done.stdout == "done\n"


def test_a_failing_started_stops_the_child() -> None:
    seconds = 4000 + os.getpid() % 1000  # a sleep no other test runs

    def started() -> None:
        raise RuntimeError("the caller's work failed")

    with pytest.raises(RuntimeError, match="the caller's work failed"):
        asyncio.run(proc.run(["sh", "-c", f"sleep {seconds}"], started=started))
    time.sleep(0.2)
    assert _running(f"sleep {seconds}") == []


def _counting(tmp: str, script: str) -> list[str]:
    """A child that notes each start of it in `tmp` (one line each), then runs `script`."""
    return ["sh", "-c", f"echo started >> {tmp}; {script}"]


def test_a_child_started_early_is_taken_over_by_the_run_of_its_argv(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    argv = _counting(str(starts), "echo out; echo said >&2")
    try:
        assert proc.start_early(argv)
        said: list[str] = []
        done = asyncio.run(proc.run(argv, on_stderr=said.append))
    finally:
        proc.stop_early()
    assert (done.returncode, done.stdout, said) == (0, "out\n", ["said"])
    assert starts.read_text() == "started\n"  # one process: the early one


def test_a_failing_child_started_early_fails_its_run_as_any_other(tmp_path: Path) -> None:
    argv = _counting(str(tmp_path / "starts"), "echo bad >&2; exit 3")
    try:
        proc.start_early(argv)
        with pytest.raises(CommandError) as e:
            asyncio.run(proc.run(argv, what="the thing"))
    finally:
        proc.stop_early()
    assert e.value.returncode == 3 and e.value.stderr_tail == "bad"


def test_a_run_with_an_environment_of_its_own_starts_its_own_child(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    argv = _counting(str(starts), "echo $NL_X")
    try:
        proc.start_early(argv)
        # (noted before it is stopped unused, on a crowded machine too)
        deadline = time.monotonic() + 10
        while not starts.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        done = asyncio.run(proc.run(argv, env={"NL_X": "mine"}))
        assert done.stdout == "mine\n"
    finally:
        proc.stop_early()
    assert starts.read_text() == "started\nstarted\n"


def test_a_child_started_early_and_never_taken_over_is_stopped() -> None:
    seconds = 5000 + os.getpid() % 1000  # a sleep no other test runs
    assert proc.start_early(["sh", "-c", f"sleep {seconds}"])
    deadline = time.monotonic() + 10
    while not _running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.01)  # (through setpriv and sh)
    assert _running(f"sleep {seconds}")
    proc.stop_early()
    deadline = time.monotonic() + 5
    while _running(f"sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.01)  # (signalled: gone once it is scheduled)
    assert _running(f"sleep {seconds}") == []


def test_a_cancelled_run_stops_the_child_it_took_over() -> None:
    seconds = 6000 + os.getpid() % 1000  # a sleep no other test runs
    argv = ["sh", "-c", f"sleep {seconds} & sleep {seconds + 1}"]
    try:
        proc.start_early(argv)
        with pytest.raises(CommandError, match=r"did not finish within 0\.3 s"):
            asyncio.run(proc.run(argv, timeout=0.3))
    finally:
        proc.stop_early()
    time.sleep(0.2)
    assert _running(f"sleep {seconds}") == [] and _running(f"sleep {seconds + 1}") == []
