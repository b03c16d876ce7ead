"""Plain progress lines: a copy's count ends with the bytes it sent, and its lines come no more
often than its paths' count did."""

from __future__ import annotations

import io

from nixlift.events import Progress
from nixlift.model import Stage
from nixlift.ui.plain import PlainRenderer


def lines(*events: Progress, verbose: bool = False) -> list[str]:
    out = io.StringIO()
    plain = PlainRenderer(out, verbose=verbose)
    for event in events:
        plain(event)
    return out.getvalue().splitlines()


def test_a_copy_ends_with_a_line_of_its_paths_and_bytes() -> None:
    copy = [Progress("h1", Stage.COPY, n, 3, "paths", n * 2**20) for n in range(4)]
    assert lines(*copy) == ["[h1] copy: 3/3 paths (100%), 3.0 MiB"]
    assert len(lines(*copy, verbose=True)) == 4


def test_a_copy_of_a_whole_closure_ends_with_its_share_of_bytes() -> None:
    done = Progress("h1", Stage.COPY, 206, 206, "paths", 15_728_640, 15_728_640)
    assert lines(done) == ["[h1] copy: 206/206 paths, 15.0/15.0 MiB (100%)"]


def test_a_copy_of_unknown_bytes_counts_paths() -> None:
    assert lines(Progress("h1", Stage.COPY, 5, 5, "paths")) == ["[h1] copy: 5/5 paths (100%)"]
