import asyncio
import itertools
import logging
import subprocess
import time
from pathlib import Path

import pytest

from nixlift.errors import CopyError
from nixlift.events import Event, Progress
from nixlift.model import Stage
from nixlift.nix import closure
from nixlift.nix.logparse import Counts, NixLog, SizeSource, relay, run_logged

COPY = [
    '@nix {"action":"start","id":1,"level":3,"text":"copying 2 paths","type":103}',
    '@nix {"action":"start","fields":["/nix/store/a"],"id":2,"level":3,'
    '"text":"copying path \'/nix/store/a\' to \'ssh://h1\'","type":100}',
    '@nix {"action":"stop","id":2}',
    '@nix {"action":"start","id":3,"level":3,"text":"copying path b","type":100}',
    '@nix {"action":"stop","id":3}',
    '@nix {"action":"stop","id":1}',
]

BUILD = [
    '@nix {"action":"start","id":10,"level":6,"text":"querying info about missing paths","type":0}',
    '@nix {"action":"msg","level":3,"msg":"this derivation will be built:"}',
    '@nix {"action":"start","id":11,"level":0,"text":"","type":104}',
    '@nix {"action":"result","fields":[0,1,0,0],"id":11,"type":105}',
    '@nix {"action":"start","id":12,"level":3,"text":"building \'/nix/store/x.drv\'","type":105}',
    '@nix {"action":"result","fields":["building-now"],"id":12,"type":101}',
    '@nix {"action":"msg","level":0,"msg":"error: builder for \'/nix/store/x.drv\' failed"}',
    "a plain line",
]


def test_copy_counts_paths_without_a_line_per_path() -> None:
    log = NixLog()
    counts = [log.feed(line)[1] for line in COPY]
    assert counts[0] == Counts(0, 2, "paths")
    assert [c for c in counts if c is not None][-1] == Counts(2, 2, "paths")
    assert log.tail == "copying 2 paths"


def test_build_lines_progress_and_errors() -> None:
    log = NixLog()
    texts = [log.feed(line)[0] for line in BUILD]
    assert texts[0] is None  # a chatty activity is not shown
    assert "building-now" in texts and "a plain line" in texts
    assert log.builds == Counts(0, 1, "builds")
    assert log.tail.splitlines()[-2:] == [
        "error: builder for '/nix/store/x.drv' failed",
        "a plain line",
    ]


def test_garbage_after_the_prefix_is_kept_as_text() -> None:
    log = NixLog()
    assert log.feed("@nix {not json") == ("@nix {not json", None)


def test_the_end_of_each_derivations_build_is_reported() -> None:
    log = NixLog()
    ended: list[str] = []
    log.on_build_end = ended.append
    for line in [
        '@nix {"action":"start","id":5,"level":3,"text":"building a","type":105,'
        '"fields":["/nix/store/a.drv","",1,1]}',
        '@nix {"action":"start","id":6,"level":3,"text":"building b","type":105,'
        '"fields":["/nix/store/b.drv","",1,1]}',
        '@nix {"action":"stop","id":6}',
        '@nix {"action":"stop","id":5}',
        '@nix {"action":"stop","id":7}',
    ]:
        log.feed(line)
    assert ended == ["/nix/store/b.drv", "/nix/store/a.drv"]


# --- a copy's bytes ------------------------------------------------------------------------------
# What nix 2.8 wrote on stderr copying a system's closure into an empty store and into one that
# had three of its five paths (`nix copy --to /tmp/somestore --log-format internal-json PATH`),
# and those paths' NAR sizes (`nix path-info --json --recursive PATH`).

LOGS = Path(__file__).parent / "nixlogs"
WHOLE = (LOGS / "copy-whole-closure.stderr").read_text().splitlines()
TWO_OF_FIVE = (LOGS / "copy-two-of-five.stderr").read_text().splitlines()
SIZES = {
    "/nix/store/01lb8d6scjcqj306pz8v2arpplaj1g00-nixos-system-h19-24.05.standin": 5064,
    "/nix/store/9qwxwj6k6kfpszp8yrk9rf8rhdniwv3r-etc": 1960,
    "/nix/store/bvw04ix2glzzvw7ba2hj3rbvfan4i1z7-etc-hostname": 120,
    "/nix/store/jkbajbylz526hslqn5n34zj8s5zqy2bw-etc-n": 120,
    "/nix/store/sglra2cn68ixzkcql841q39b74sqj6vd-system-path": 96,
}


def counted(log: NixLog, lines: list[str]) -> list[Counts]:
    return [c for c in (log.feed(line)[1] for line in lines) if c is not None and c.expected]


def test_a_copy_of_a_whole_closure_counts_bytes_of_a_known_total() -> None:
    log = NixLog()
    log.know_sizes(SIZES)
    counts = counted(log, WHOLE)
    total = sum(SIZES.values())
    assert counts[0] == Counts(0, 5, "paths", 0, total)
    # each path counted when its activity stops: etc-hostname, etc-n, etc, system-path, system
    assert [c.bytes_done for c in counts[1:]] == [120, 240, 2200, 2296, 7360]
    assert counts[-1] == Counts(5, 5, "paths", total, total)
    assert log.bytes_sent == total


def test_a_copy_of_part_of_a_closure_counts_bytes_of_no_total() -> None:
    # "copying 2 paths": nix does not say which two; the closure has five
    log = NixLog()
    log.know_sizes(SIZES)
    counts = counted(log, TWO_OF_FIVE)
    assert counts == [
        Counts(0, 2, "paths", 0, None),
        Counts(1, 2, "paths", 96, None),
        Counts(2, 2, "paths", 96 + 5064, None),
    ]


def test_sizes_known_late_count_the_paths_sent_before() -> None:
    log = NixLog()
    lines = iter(WHOLE)
    before = [log.feed(line)[1] for line in itertools.islice(lines, 15)]  # three paths sent
    assert [c for c in before if c is not None][-1] == Counts(3, 5, "paths")  # no bytes yet
    log.know_sizes(SIZES)
    assert log.bytes_sent == 2200
    assert counted(log, list(lines))[-1] == Counts(5, 5, "paths", 7360, 7360)


def test_without_sizes_or_with_a_path_of_unknown_size_bytes_are_not_counted() -> None:
    log = NixLog()
    assert counted(log, WHOLE)[-1] == Counts(5, 5, "paths")
    partial = NixLog()
    partial.know_sizes({p: s for p, s in SIZES.items() if not p.endswith("-etc-n")})
    counts = counted(partial, WHOLE)
    assert [c.bytes_done for c in counts] == [0, 120, None, None, None, None]


def test_a_copy_relays_one_progress_per_path_with_its_bytes() -> None:
    events: list[Event] = []
    log = NixLog()
    log.know_sizes(SIZES)
    sink = relay(lambda: ("h1",), Stage.COPY, log, events.append)
    for line in TWO_OF_FIVE:
        sink(line)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress == [
        Progress("h1", Stage.COPY, 0, 2, "paths", 0, None),
        Progress("h1", Stage.COPY, 1, 2, "paths", 96, None),
        Progress("h1", Stage.COPY, 2, 2, "paths", 5160, None),
    ]


def fake_nix(log: str, *, before: float = 0, after: float = 0) -> list[str]:
    """A command that writes what nix wrote on stderr, `before` and `after` seconds of its
    own (run_logged's --log-format becomes its unused arguments)."""
    return ["sh", "-c", f"sleep {before}; cat {LOGS / log} >&2; sleep {after}", "sh"]


def copy_progress(argv: list[str], sizes: SizeSource, log: NixLog | None = None) -> list[Progress]:
    """The Progress events of a copy run as nixlift runs it, with these NAR sizes."""
    events: list[Event] = []
    asyncio.run(
        run_logged(
            argv,
            host="h1",
            phase=Stage.COPY,
            emit=events.append,
            error=CopyError,
            what="copying",
            hint="",
            log=log,
            sizes=sizes,
        )
    )
    return [e for e in events if isinstance(e, Progress)]


def sizes_after(seconds: float) -> SizeSource:
    async def sizes() -> dict[str, int]:
        await asyncio.sleep(seconds)
        return SIZES

    return sizes


def test_sizes_read_alongside_a_copy_count_its_bytes() -> None:
    log = NixLog()
    progress = copy_progress(fake_nix("copy-two-of-five.stderr", before=0.1), sizes_after(0), log)
    assert log.bytes_sent == 5160
    assert progress == [
        Progress("h1", Stage.COPY, 0, 2, "paths", 0, None),
        Progress("h1", Stage.COPY, 1, 2, "paths", 96, None),
        Progress("h1", Stage.COPY, 2, 2, "paths", 5160, None),
    ]


def test_the_last_count_waits_for_sizes_read_while_nix_ends() -> None:
    # every path sent before the sizes are known: the last count says them, no count more
    progress = copy_progress(fake_nix("copy-two-of-five.stderr", after=0.6), sizes_after(0.2))
    assert progress == [
        Progress("h1", Stage.COPY, 0, 2, "paths"),
        Progress("h1", Stage.COPY, 1, 2, "paths"),
        Progress("h1", Stage.COPY, 2, 2, "paths", 5160, None),
    ]


def test_sizes_not_read_when_nix_ends_are_not_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "nixlift.nix")
    start = time.monotonic()
    progress = copy_progress(fake_nix("copy-two-of-five.stderr"), sizes_after(30))
    assert time.monotonic() - start < 5
    assert progress[-1] == Progress("h1", Stage.COPY, 2, 2, "paths")  # said, without bytes
    assert "the copy ended before the NAR sizes of its paths were read" in caplog.text


def test_sizes_that_cannot_be_read_leave_a_copy_counting_paths(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIX_CONFIG", "substituters =")  # (or nix asks cache.nixos.org)
    caplog.set_level(logging.DEBUG, "nixlift.nix")
    missing = "/nix/store/" + "0" * 32 + "-not-here"
    progress = copy_progress(
        fake_nix("copy-two-of-five.stderr", after=0.3), lambda: closure.NarSizes().of([missing])
    )
    assert [(p.done, p.bytes_done) for p in progress] == [(0, None), (1, None), (2, None)]
    assert "NAR sizes of the paths to copy were not read" in caplog.text


def _added(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(text)
    done = subprocess.run(
        ["nix-store", "--add", str(directory / name)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_deploys_copies_share_one_read_of_their_sizes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIX_CONFIG", "substituters =")
    caplog.set_level(logging.DEBUG, "nixlift.proc")
    first, second = _added(tmp_path, "one", "1" * 100), _added(tmp_path, "two", "2" * 300)
    later = "/nix/store/" + "2" * 32 + "-built-later"  # not in the store (yet)

    async def copies() -> list[dict[str, int]]:
        sizes = closure.NarSizes([first, second, later])
        try:
            return list(await asyncio.gather(sizes.of([first]), sizes.of([second])))
        finally:
            await sizes.close()

    one, two = asyncio.run(copies())
    assert list(one) == [first] and list(two) == [second]  # each its copy's closure
    assert two[second] > one[first] > 0
    reads = [r for r in caplog.messages if "path-info" in r and r.startswith("run")]
    assert len(reads) == 1 and later not in reads[0], reads
