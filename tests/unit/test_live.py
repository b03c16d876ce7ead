"""The live view, rendered as a terminal would show it: rich writes ANSI into a buffer, pyte
plays it back onto a virtual screen, and the tests read the screen."""

from __future__ import annotations

import io

import pyte
import pytest
from rich.console import Console

from nixlift.events import Finished, Notice, Output, Phase, Plan, Progress
from nixlift.model import Goal, HostResult, Stage, Status
from nixlift.ui.format import format_bytes, format_progress
from nixlift.ui.live import (
    LiveRenderer,
    clean_line,
    format_duration,
    render_summary,
    short_store_path,
)

WIDTH = 100
HEIGHT = 30
SYSTEM = "/nix/store/" + "a" * 32 + "-nixos-system-web-1-24.05"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def terminal(height: int = HEIGHT) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=True,
        width=WIDTH,
        height=height,
        color_system="standard",
        legacy_windows=False,
    )
    return console, buf


def play(output: str, height: int = HEIGHT) -> pyte.HistoryScreen:
    """Feed what rich wrote to a virtual terminal (the tty turns "\\n" into "\\r\\n")."""
    screen = pyte.HistoryScreen(WIDTH, height, history=10_000)
    pyte.ByteStream(screen).feed(output.replace("\n", "\r\n").encode())
    return screen


def visible(screen: pyte.HistoryScreen) -> list[str]:
    return [line.rstrip() for line in screen.display]


def scrollback(screen: pyte.HistoryScreen) -> list[str]:
    """Everything a person can scroll back to, then the screen."""
    old = [
        "".join(line[x].data for x in range(screen.columns)).rstrip() for line in screen.history.top
    ]
    return old + visible(screen)


def row(lines: list[str], host: str) -> str:
    found = [line for line in lines if line.split(" ", 1)[0] == host]
    assert found, f"no row for {host} in:\n" + "\n".join(lines)
    return found[-1]


# ---------------------------------------------------------------------------------------------
# Pure formatting


@pytest.mark.parametrize(
    ("done", "expected", "unit", "text"),
    [
        (120, 200, "paths", "120/200 paths (60%)"),
        (0, 0, "paths", "0 paths"),
        (3_250_000, 20_971_520, "bytes", "3.1/20.0 MiB (15%)"),
        (512, 1000, "bytes", "512/1000 B (51%)"),
        (1000, 2048, "bytes", "1.0/2.0 KiB (48%)"),
        (5 * 2**30, 10 * 2**30, "bytes", "5.0/10.0 GiB (50%)"),
        (1536, 0, "bytes", "1.5 KiB"),
    ],
)
def test_format_progress(done: int, expected: int, unit: str, text: str) -> None:
    assert format_progress(done, expected, unit) == text


@pytest.mark.parametrize(
    ("done", "expected", "bytes_done", "bytes_expected", "text"),
    [
        # the bytes sent, of a total not known: the share is of paths
        (171, 206, 12_897_485, None, "171/206 paths (83%), 12.3 MiB"),
        (0, 206, 0, None, "0/206 paths (0%), 0 B"),
        # of a known total (the host lacked the whole closure): the share is of bytes
        (171, 206, 12_897_485, 15_728_640, "171/206 paths, 12.3/15.0 MiB (82%)"),
        (206, 206, 15_728_640, 15_728_640, "206/206 paths, 15.0/15.0 MiB (100%)"),
        # bytes not known: paths only
        (171, 206, None, None, "171/206 paths (83%)"),
    ],
)
def test_format_progress_of_a_copy_with_its_bytes(
    done: int, expected: int, bytes_done: int | None, bytes_expected: int | None, text: str
) -> None:
    assert format_progress(done, expected, "paths", bytes_done, bytes_expected) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (3_250_000, "3.1 MiB"), (2**40, "1.0 TiB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0s"), (12.34, "12.3s"), (125, "2m05s"), (3720, "1h02m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_short_store_path_and_clean_line() -> None:
    assert short_store_path(SYSTEM) == "aaaaaaaa…-nixos-system-web-1-24.05"
    assert short_store_path("/run/current-system") == "/run/current-system"
    assert clean_line("\x1b[31;1merror:\x1b[0m bad\r\n") == "error: bad"
    assert clean_line("10%\r50%\r90%") == "90%"
    assert clean_line("a\tb\x07") == "a   b"


# ---------------------------------------------------------------------------------------------
# A small deploy, start to end


def test_scripted_deploy_as_a_terminal_shows_it() -> None:
    console, buf = terminal()
    clock = Clock()
    live = LiveRenderer(console, tail_lines=5, auto_refresh=False, clock=clock)
    results: list[HostResult] = []
    with live:
        live(Plan(("web-1", "web-2", "db-1", "cache-1", "edge-1"), Goal.SWITCH))
        live(Phase("web-1", Stage.BUILD, "x86_64-linux"))
        live(Phase("web-2", Stage.BUILD, "x86_64-linux"))
        live(Output("web-2", "building \x1b[1m/nix/store/" + "b" * 32 + "-foo.drv\x1b[0m"))
        live(Progress("web-2", Stage.BUILD, 3, 10, "paths"))
        clock.tick(2)
        live(Phase("web-1", Stage.COPY, SYSTEM))
        live(Progress("web-1", Stage.COPY, 3_250_000, 20_971_520, "bytes"))
        live(Phase("db-1", Stage.CONNECT, "root@db-1"))
        clock.tick(1)
        live.refresh()

        # while running: phases, progress and the latest output line; edge-1 not started
        screen = visible(play(buf.getvalue()))
        assert screen[0].startswith("switch  5 hosts")
        assert "3 running" in screen[0] and "2 waiting" in screen[0]
        assert row(screen, "web-1").split()[1:3] == ["copy", "3.1/20.0"]
        assert "aaaaaaaa…-nixos-system-web-1" in row(screen, "web-1")
        assert row(screen, "web-1").endswith("3.0s")
        assert "3/10 paths" in row(screen, "web-2")
        assert "building bbbbbbbb…-foo.drv" in row(screen, "web-2")
        assert row(screen, "db-1").split()[1:3] == ["connect", "root@db-1"]
        assert row(screen, "db-1").endswith("1.0s")
        assert row(screen, "edge-1").split() == ["edge-1", "pending"]

        live(Phase("db-1", Stage.ACTIVATE, "switch"))
        for i in range(12):
            live(Output("db-1", f"activation line {i}"))
        clock.tick(1.5)
        results.append(
            HostResult(
                "db-1",
                Status.FAILED,
                system=SYSTEM,
                error="switch-to-configuration exited with 4",
                hint="look at `journalctl -b` on db-1",
                durations=((Stage.CONNECT, 0.5), (Stage.ACTIVATE, 2.0)),
            )
        )
        live(Finished(results[-1]))
        live(Notice("web-1", "activated; switch-to-configuration asks for a reboot"))
        results.append(
            HostResult(
                "web-1",
                Status.REBOOT_REQUIRED,
                system=SYSTEM,
                durations=((Stage.BUILD, 1.0), (Stage.COPY, 2.0), (Stage.ACTIVATE, 1.2)),
            )
        )
        live(Finished(results[-1]))
        live(Phase("cache-1", Stage.CONNECT, "root@cache-1"))
        results.append(
            HostResult(
                "cache-1", Status.UNCHANGED, system=SYSTEM, durations=((Stage.CONNECT, 0.3),)
            )
        )
        live(Finished(results[-1]))
        results.append(
            HostResult(
                "web-2",
                Status.OK,
                system=SYSTEM,
                durations=((Stage.BUILD, 3.0), (Stage.COPY, 1.0), (Stage.ACTIVATE, 0.5)),
            )
        )
        live(Finished(results[-1]))
        results.append(HostResult("edge-1", Status.SKIPPED, error="interrupted"))
        live(Finished(results[-1]))
        live.refresh()
    render_summary(results, console)

    lines = scrollback(play(buf.getvalue()))
    text = "\n".join(lines)
    assert "\x1b" not in text and "[0m" not in text

    # printed above the rows, so it stays in the scrollback: the failure with its tail
    block = lines.index("✗ db-1: FAILED in 2.5 s: switch-to-configuration exited with 4")
    assert lines[block + 1] == "  hint: look at `journalctl -b` on db-1"
    assert lines[block + 2 : block + 7] == [f"  │ activation line {i}" for i in range(7, 12)]
    assert "web-1: activated; switch-to-configuration asks for a reboot" in lines

    # the last frame of the rows: every host with its final status and its time, frozen
    header = next(i for i, x in enumerate(lines) if x.split()[:2] == ["host", "result"])
    start = next(i for i, x in enumerate(lines) if x.startswith("switch  5 hosts · 3 done"))
    frame = lines[start:header]
    assert len(frame) == 2 + 5 + 1 and frame[-1] == ""  # title, header, rows, a gap
    assert frame[0] == "switch  5 hosts · 3 done · 1 failed · 1 skipped  4.5s"
    assert row(frame, "web-1").split()[1] == "reboot-required"
    assert row(frame, "web-1").endswith("4.5s")
    assert row(frame, "web-2").split()[1] == "ok"
    assert row(frame, "db-1").split()[1:3] == ["failed", "FAILED"]
    assert row(frame, "db-1").endswith("2.5s")
    assert row(frame, "cache-1").split()[1] == "unchanged"
    assert row(frame, "edge-1").split()[1:3] == ["skipped", "skipped:"]

    # the summary table and its closing lines
    assert lines[header].split() == [
        "host",
        "result",
        "system",
        "build",
        "connect",
        "copy",
        "activate",
    ]
    summary = lines[header:]
    assert row(summary, "db-1").split()[1:] == ["failed", "aaaaaaaa…-nix…", "0.5s", "2.0s"]
    # too narrow for an error column that would break words: the errors under the table, whole
    assert "db-1: switch-to-configuration exited with 4" in summary
    assert "hint: look at `journalctl -b` on db-1" in summary
    assert row(summary, "web-2").split()[1:] == ["ok", "aaaaaaaa…-nix…", "3.0s", "1.0s", "0.5s"]
    # every time sits under its phase's heading
    web1 = row(summary, "web-1")
    for phase, time in (("build", "1.0s"), ("copy", "2.0s"), ("activate", "1.2s")):
        end = lines[header].index(phase) + len(phase)
        assert web1[end - len(time) : end] == time
    assert row(summary, "edge-1").split()[1:] == ["skipped"]
    assert "edge-1: interrupted" in summary
    assert "3 of 5 hosts succeeded" in summary
    assert "reboot required on: web-1" in summary
    # and the screen itself (what is visible without scrolling) ends with them
    assert [x for x in visible(play(buf.getvalue())) if x][-2:] == [
        "3 of 5 hosts succeeded",
        "reboot required on: web-1",
    ]


def test_failure_without_detail_shows_kept_tail_and_detail_wins_when_given() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, tail_lines=3, auto_refresh=False, clock=Clock())
    with live:
        for i in range(5):
            live(Output("a", f"kept {i}"))
            live(Output("b", f"kept {i}"))
        live(Finished(HostResult("a", Status.FAILED, error="boom")))
        live(Finished(HostResult("b", Status.FAILED, error="bang", detail="d1\nd2\nd3\nd4")))
    lines = scrollback(play(buf.getvalue()))
    a = lines.index("✗ a: FAILED in 0.0 s: boom")
    assert lines[a + 1 : a + 4] == ["  │ kept 2", "  │ kept 3", "  │ kept 4"]
    b = lines.index("✗ b: FAILED in 0.0 s: bang")
    assert lines[b + 1 : b + 4] == ["  │ d2", "  │ d3", "  │ d4"]


def test_progress_belongs_to_its_phase() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    with live:
        live(Phase("a", Stage.BUILD))
        live(Progress("a", Stage.BUILD, 1, 4, "paths"))
        live(Progress("a", Stage.COPY, 2048, 4096, "bytes"))  # ahead of its Phase: kept for it
        live.refresh()
        assert row(visible(play(buf.getvalue())), "a").split()[1:3] == ["build", "1/4"]
        live(Phase("a", Stage.COPY, "to a"))
        live.refresh()
        assert row(visible(play(buf.getvalue())), "a").split()[1:6] == [
            "copy",
            "2.0/4.0",
            "KiB",
            "(50%)",
            "to",
        ]
        live(Phase("a", Stage.ACTIVATE, "switch"))
        live.refresh()
    assert row(visible(play(buf.getvalue())), "a").split()[1:3] == ["activate", "switch"]


def test_a_copy_row_shows_its_paths_and_the_bytes_sent() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())

    def now() -> str:
        live.refresh()
        return row(visible(play(buf.getvalue())), "a").split("  aaaaaaaa…")[0]

    with live:
        live(Phase("a", Stage.COPY, SYSTEM))
        live(Progress("a", Stage.COPY, 171, 206, "paths", 12_897_485))
        assert now().endswith("copy       171/206 paths (83%), 12.3 MiB")
        live(Progress("a", Stage.COPY, 172, 206, "paths", 13_000_000, 15_728_640))
        assert now().endswith("copy       172/206 paths, 12.4/15.0 MiB (82%)")


def test_hosts_without_a_plan_get_rows_as_they_come_and_a_plan_orders_them() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    with live:
        live(Phase("z", Stage.BUILD))
        live(Output("y", "hello"))
        live.refresh()
        assert [x.split()[0] for x in visible(play(buf.getvalue()))[2:4]] == ["z", "y"]
        live(Plan(("y", "x"), Goal.BOOT))
        live.refresh()
    screen = visible(play(buf.getvalue()))
    assert screen[0].startswith("boot  3 hosts")
    assert [x.split()[0] for x in screen[2:5]] == ["y", "x", "z"]
    assert row(screen, "y").split()[1:] == ["hello", "0.0s"]


# ---------------------------------------------------------------------------------------------
# Many hosts on a small terminal


def frame_height(live: LiveRenderer) -> int:
    return len(live.console.render_lines(live.renderable(), live.console.options, pad=False))


def test_two_hundred_hosts_fit_the_terminal() -> None:
    console, buf = terminal()
    clock = Clock()
    live = LiveRenderer(console, auto_refresh=False, clock=clock)
    hosts = tuple(f"host-{i:03d}" for i in range(200))
    with live:
        live(Plan(hosts, Goal.SWITCH))
        for h in hosts[:150]:
            live(Phase(h, Stage.ACTIVATE, "switch"))
            live(Finished(HostResult(h, Status.OK, durations=((Stage.ACTIVATE, 1.0),))))
        for h in hosts[150:170]:
            live(Phase(h, Stage.COPY, SYSTEM))
            live(Progress(h, Stage.COPY, 5, 9, "paths"))
        clock.tick(3)
        live.refresh()

        assert frame_height(live) <= HEIGHT - 1
        screen = visible(play(buf.getvalue()))
        assert screen[0].startswith("switch  200 hosts · 150 done · 20 running · 30 waiting")
        shown = [x.split()[0] for x in screen[2:] if x.startswith("host-")]
        # running ones first in importance, then those still waiting; done ones collapsed
        assert shown[:20] == list(hosts[150:170])
        assert len(shown) == HEIGHT - 4
        assert screen[HEIGHT - 2] == "… 150 hosts done, 24 waiting"
        assert screen[HEIGHT - 1] == ""
        assert "..." not in "\n".join(screen)  # rich did not have to crop

        for h in hosts[150:199]:
            live(Finished(HostResult(h, Status.OK)))
        live(Finished(HostResult("host-199", Status.FAILED, error="boom")))
    # after the end the last frame, the failure block above it and the cursor line all fit
    assert frame_height(live) <= HEIGHT - 1
    screen = visible(play(buf.getvalue()))
    assert screen[-3].startswith("host-")
    assert screen[-2] == "… 174 hosts done"
    assert row(screen, "host-199").split()[1] == "failed"
    assert screen[-1] == ""


@pytest.mark.parametrize("height", [1, 2, 3, 4, 6])
def test_tiny_terminals_never_overflow(height: int) -> None:
    console, _ = terminal(height)
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    live(Plan(tuple(f"h{i}" for i in range(10)), Goal.TEST))
    live(Phase("h3", Stage.BUILD))
    assert frame_height(live) <= max(height - 1, 1)


def test_auto_refresh_starts_and_stops_cleanly() -> None:
    console, buf = terminal()
    with LiveRenderer(console, refresh_per_second=50) as live:
        live(Plan(("a",), Goal.SWITCH))
        live(Finished(HostResult("a", Status.OK)))
    lines = visible(play(buf.getvalue()))
    assert row(lines, "a").split()[1] == "ok"


def test_notice_without_host_and_events_before_enter_do_not_draw() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    live(Plan(("a",), Goal.SWITCH))
    live.refresh()  # not started: nothing drawn
    assert buf.getvalue() == ""
    live(Notice(None, "hello"))
    assert visible(play(buf.getvalue()))[0] == "hello"


@pytest.mark.parametrize("width", [30, 60, 100, 200])
def test_summary_and_rows_stay_within_the_width(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, height=HEIGHT, color_system=None)
    results = [
        HostResult(
            "a-rather-long-host-name-in-a-big-network",
            Status.FAILED,
            system=SYSTEM,
            error="could not connect: ssh: connect to host 10.0.0.1 port 22: refused",
            hint="is the host up?",
            durations=((Stage.CONNECT, 10.0),),
        ),
        HostResult(
            "b", Status.OK, system=SYSTEM, durations=((Stage.BUILD, 61.0), (Stage.COPY, 2.5))
        ),
    ]
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    live(Plan(tuple(r.name for r in results), Goal.SWITCH))
    live(Phase("b", Stage.COPY, SYSTEM))
    live(Progress("b", Stage.COPY, 10, 20, "paths"))
    lines = console.render_lines(live.renderable(), console.options, pad=False)
    assert len(lines) == 4
    assert all(sum(seg.cell_length for seg in line) <= width for line in lines)
    buf.seek(0)
    buf.truncate()
    render_summary(results, console)
    out = buf.getvalue().splitlines()
    assert "1 of 2 hosts succeeded" in out
    assert all(len(line.rstrip()) <= width for line in out)


@pytest.mark.parametrize("width", [60, 80, 120])
def test_summary_errors_wrap_between_words_and_unbuilt_hosts_show_no_system(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, height=HEIGHT, color_system=None)
    error = (
        "building h1 failed (nix-store exit status 1): builder for "
        f"'/nix/store/{'c' * 32}-broken.drv' failed with exit code 3"
    )
    results = [
        HostResult(
            "h1",
            Status.FAILED,
            None,
            error=error,
            hint="the derivation's own log says why",
            durations=((Stage.BUILD, 3.0),),
        ),
        HostResult("h2", Status.OK, SYSTEM, durations=((Stage.BUILD, 3.0), (Stage.COPY, 1.0))),
    ]
    render_summary(results, console)
    text = buf.getvalue()
    words = set(text.split())
    # every word of the error and hint whole on some line: wrapped between words, not inside
    said = error.replace(f"/nix/store/{'c' * 32}", "cccccccc…")  # store paths shortened
    for word in (said + " hint: the derivation's own log says why").split():
        assert word in words, (word, text)
    row_h1 = next(line for line in text.splitlines() if line.startswith("h1"))
    row_h2 = next(line for line in text.splitlines() if line.startswith("h2"))
    assert "aaaaaaaa…" in row_h2 and "aaaaaaaa…" not in row_h1  # h1 built no system
