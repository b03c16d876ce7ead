"""The live view for a terminal: one row per host, updated in place, then a summary table.

`LiveRenderer` is an `Emit`: the core calls it with every event, from the event loop thread.
Rows are drawn by rich's `Live` (its own refresh thread redraws them a few times a second so
elapsed times tick); what must stay readable afterwards — notices, and a block per failed
host with its error, hint and last output lines — is printed above the rows, into the
scrollback. The rows never take more lines than the terminal has: when there are too many
hosts, running and failed ones are shown and the rest are collapsed into one count line.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nixlift.events import Event, Finished, Notice, Output, Phase, Plan, Progress, Report
from nixlift.model import HostResult, Status
from nixlift.ui.format import describe, format_progress

STATUS_STYLE: dict[Status, str] = {
    Status.OK: "bold green",
    Status.UNCHANGED: "green",
    Status.REBOOT_REQUIRED: "bold yellow",
    Status.FAILED: "bold red",
    Status.ROLLED_BACK: "bold red",
    Status.SKIPPED: "magenta",
}
_PHASE_STYLE = "cyan"
_PENDING = "pending"
#: the order of the summary's phase columns (phases not listed follow, as they first appear)
_PHASE_ORDER = ("evaluate", "build", "connect", "copy", "unchanged", "activate", "wait")

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_STORE_PATH = re.compile(r"/nix/store/([0-9a-z]{32})-([^\s/'\"]+)")


def format_duration(seconds: float) -> str:
    """`0.4s`, `12.3s`, `2m05s`, `1h02m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def short_store_path(path: str) -> str:
    """`/nix/store/<32-char hash>-name` → `hash8…-name`; anything else unchanged."""
    m = _STORE_PATH.fullmatch(path)
    return f"{m.group(1)[:8]}…-{m.group(2)}" if m else path


def shorten_store_paths(text: str) -> str:
    """Every store path inside `text` shortened as by `short_store_path`."""
    return _STORE_PATH.sub(lambda m: f"{m.group(1)[:8]}…-{m.group(2)}", text)


def clean_line(line: str) -> str:
    """A command's output line made safe to draw: no escape sequences or control characters,
    only what a terminal would leave visible after a carriage return, tabs expanded."""
    line = _ANSI.sub("", line).rstrip("\r\n")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return _CONTROL.sub("", line.expandtabs(4))


def _one_line(text: str) -> str:
    return " ".join(clean_line(part) for part in text.splitlines() if part.strip())


# ---------------------------------------------------------------------------------------------
# The live renderer


@dataclass
class _Host:
    name: str
    tail: deque[str]
    phase: str = ""
    detail: str = ""
    #: the latest Progress per phase (it may come just before its Phase)
    progress: dict[str, Progress] = field(default_factory=dict)
    last_line: str = ""
    started: float | None = None
    finished_at: float | None = None
    result: HostResult | None = None
    #: set when the first event of the host was Finished (evaluation failed, skipped, …)
    took: float | None = None

    def elapsed(self, now: float) -> float | None:
        if self.took is not None:
            return self.took
        if self.started is None:
            return None
        end = self.finished_at if self.finished_at is not None else now
        return max(end - self.started, 0.0)

    @property
    def category(self) -> str:
        """running | failed | pending | skipped | done — the order in which rows keep their
        place when they do not all fit."""
        if self.result is not None:
            if self.result.status is Status.SKIPPED:
                return "skipped"
            return "done" if self.result.succeeded else "failed"
        return "pending" if self.started is None else "running"


#: how the title and the count line call the hosts of each category (but "done")
_COUNT_WORDS = {
    "running": "running",
    "failed": "failed",
    "skipped": "skipped",
    "pending": "waiting",
}
_KEEP_ORDER = {"running": 0, "failed": 1, "pending": 2, "skipped": 3, "done": 4}


@dataclass
class _State:
    order: list[str] = field(default_factory=list)
    hosts: dict[str, _Host] = field(default_factory=dict)
    goal: str = ""
    started: float | None = None


class LiveRenderer:
    """An `Emit` that draws one live row per host on a terminal (use it as a context manager).

    Thread-safety: events arrive on the event loop thread while rich's refresh thread draws;
    both touch the state only under `self._lock`, and a frame is built as a snapshot of it.
    Printing (notices, failure blocks) happens outside that lock.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        tail_lines: int = 8,
        refresh_per_second: float = 8,
        auto_refresh: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.tail_lines = tail_lines
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()
        self._live = Live(
            console=self.console,
            auto_refresh=auto_refresh,
            refresh_per_second=refresh_per_second,
            transient=False,
            # stdout carries data; stray writes to stderr would tear the rows, so they are
            # printed above them — but only when the rows go to stderr themselves
            redirect_stdout=False,
            redirect_stderr=self.console.file is sys.stderr,
            get_renderable=self.renderable,
        )

    # -- context manager / Emit -------------------------------------------------------------

    def __enter__(self) -> Self:
        self._live.start(refresh=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def __call__(self, event: Event) -> None:
        with self._lock:
            to_print = self._apply(event)
        if to_print is not None:
            self.console.print(to_print)
            self.refresh()

    def refresh(self) -> None:
        """Redraw the rows now (only while the live display runs)."""
        if self._live.is_started:
            self._live.refresh()

    def summary(self, results: list[HostResult]) -> None:
        """`render_summary` on this renderer's console."""
        render_summary(results, self.console)

    # -- state ------------------------------------------------------------------------------

    def _host(self, name: str, *, touch: bool = True) -> _Host:
        st = self._state
        host = st.hosts.get(name)
        if host is None:
            host = st.hosts[name] = _Host(name, deque(maxlen=max(self.tail_lines, 0)))
            st.order.append(name)
        if touch:
            now = self._clock()
            if host.started is None:
                host.started = now
            if st.started is None:
                st.started = now
        return host

    def _apply(self, event: Event) -> RenderableType | None:
        """Update the state; return what to print above the rows, if anything."""
        st = self._state
        if isinstance(event, Plan):
            st.goal = event.goal
            if st.started is None:
                st.started = self._clock()
            for name in event.hosts:
                self._host(name, touch=False)
            planned = set(event.hosts)
            st.order = list(dict.fromkeys(event.hosts)) + [n for n in st.order if n not in planned]
        elif isinstance(event, Phase):
            host = self._host(event.host)
            if event.phase != host.phase:
                host.last_line = ""
                host.progress = {k: v for k, v in host.progress.items() if k == event.phase}
            host.phase = event.phase
            host.detail = _one_line(event.detail)
        elif isinstance(event, Progress):
            host = self._host(event.host)
            if not host.phase:
                host.phase = event.phase
            host.progress[event.phase] = event
        elif isinstance(event, Output):
            host = self._host(event.host)
            line = clean_line(event.line)
            host.tail.append(line)
            if line.strip():
                host.last_line = ("shared: " if event.shared else "") + line.strip()
        elif isinstance(event, Report):
            self._host(event.host)
            block: list[RenderableType] = [
                Text.assemble((event.host, "bold"), f": {event.title}", style="cyan")
            ]
            block += [Text.assemble(("  │ ", "dim"), clean_line(line)) for line in event.lines]
            if not event.lines:
                block.append(Text("  (nothing said)", "dim"))
            return Group(*block)
        elif isinstance(event, Notice):
            if event.host is not None:
                self._host(event.host)
                return Text.assemble((event.host, "bold"), ": ", clean_line(event.message))
            return Text(clean_line(event.message))
        elif isinstance(event, Finished):
            result = event.result
            known = st.hosts.get(result.name)
            if known is None or known.started is None:
                took = sum(d for _, d in result.durations)
            else:
                took = None
            host = self._host(result.name)
            host.result, host.took = result, took
            host.finished_at = self._clock()
            if result.failed:
                return self._failure_block(host, result)
        return None

    def _failure_block(self, host: _Host, result: HostResult) -> RenderableType:
        parts: list[RenderableType] = [
            Text.assemble(
                ("✗ ", "bold red"),
                (result.name, "bold red"),
                ": ",
                Text(_ANSI.sub("", describe(result)), "red"),
            )
        ]
        if result.hint:
            parts.append(Text.assemble("  ", ("hint: ", "bold"), clean_line(result.hint)))
        lines = result.detail.splitlines() if result.detail else list(host.tail)
        lines = lines[-self.tail_lines :] if self.tail_lines > 0 else []
        for line in lines:
            parts.append(Text.assemble(("  │ ", "dim"), clean_line(line)))
        return Group(*parts)

    # -- drawing ----------------------------------------------------------------------------

    def renderable(self) -> RenderableType:
        """The current frame: a title line, a header line and at most (terminal height - 3)
        rows, so that it always fits with one line to spare."""
        height = self.console.size.height
        with self._lock:
            return self._frame(max(height - 1, 1), self._clock())

    def _frame(self, budget: int, now: float) -> RenderableType:
        st = self._state
        hosts = [st.hosts[n] for n in st.order]
        counts = dict.fromkeys(_KEEP_ORDER, 0)
        for h in hosts:
            counts[h.category] += 1
        title = self._title(counts, len(hosts), now)
        rows_budget = budget - 2  # the title and the header
        if rows_budget < 1 or not hosts:
            return title

        hidden = dict.fromkeys(_KEEP_ORDER, 0)
        shown = hosts
        if len(hosts) > rows_budget:
            slots = rows_budget - 1  # the count line
            ranked = sorted(range(len(hosts)), key=lambda i: (_KEEP_ORDER[hosts[i].category], i))
            keep = set(ranked[:slots])
            shown = [h for i, h in enumerate(hosts) if i in keep]
            for i, h in enumerate(hosts):
                if i not in keep:
                    hidden[h.category] += 1

        width = self.console.size.width
        table = Table(
            box=None,
            padding=(0, 1),
            pad_edge=False,
            expand=True,
            header_style="bold dim",
            show_edge=False,
        )
        table.add_column(
            "host", no_wrap=True, overflow="ellipsis", max_width=max(min(32, width // 3), 8)
        )
        table.add_column("phase", no_wrap=True, overflow="ellipsis", min_width=9)
        table.add_column("now", no_wrap=True, overflow="ellipsis", ratio=1)
        table.add_column("time", no_wrap=True, justify="right", min_width=6)
        for h in shown:
            table.add_row(*self._row(h, now))
        parts: list[RenderableType] = [title, table]
        if n_hidden := sum(hidden.values()):
            others = [f"{hidden[c]} {_COUNT_WORDS[c]}" for c in _COUNT_WORDS if hidden[c]]
            if hidden["done"]:
                line = ", ".join([f"{hidden['done']} hosts done", *others])
            else:
                line = f"{n_hidden} more hosts: {', '.join(others)}"
            parts.append(Text(f"… {line}", style="dim", no_wrap=True, overflow="ellipsis"))
        return Group(*parts)

    def _title(self, counts: dict[str, int], total: int, now: float) -> Text:
        st = self._state
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(st.goal or "nixlift", "bold")
        text.append(f"  {total} host{'s' if total != 1 else ''}")
        for category, style in (
            ("done", "green"),
            ("failed", "bold red"),
            ("skipped", STATUS_STYLE[Status.SKIPPED]),
            ("running", _PHASE_STYLE),
            ("pending", "dim"),
        ):
            if n := counts[category]:
                text.append(" · ")
                text.append(f"{n} {_COUNT_WORDS.get(category, category)}", style)
        if st.started is not None:
            text.append(f"  {format_duration(max(now - st.started, 0.0))}", "dim")
        return text

    def _row(self, h: _Host, now: float) -> tuple[Text, Text, Text, Text]:
        elapsed = h.elapsed(now)
        time_text = Text(format_duration(elapsed) if elapsed is not None else "", "dim")
        if h.result is not None:
            status = h.result.status
            style = STATUS_STYLE[status]
            doing = Text(_one_line(describe(h.result)), "red" if h.result.failed else "dim")
            return Text(h.name, "bold"), Text(status.value, style), doing, time_text
        if h.started is None:
            return Text(h.name, "dim"), Text(_PENDING, "dim"), Text(""), time_text
        doing = Text()
        p = h.progress.get(h.phase)
        if p is not None:
            doing.append(
                format_progress(p.done, p.expected, p.unit, p.bytes_done, p.bytes_expected), "bold"
            )
        if h.detail:
            doing.append("  " if doing else "")
            doing.append(shorten_store_paths(h.detail))
        if h.last_line:
            doing.append("  " if doing else "")
            doing.append(shorten_store_paths(h.last_line), "dim")
        return Text(h.name, "bold"), Text(h.phase, _PHASE_STYLE), doing, time_text


# ---------------------------------------------------------------------------------------------
# The closing summary


def render_summary(results: list[HostResult], console: Console) -> None:
    """After the live rows: a table of every host's outcome, system, time per phase (one column
    per phase, in the order they run) and error, then `N of M hosts succeeded` and, if any,
    `reboot required on: …`."""
    console.line()
    if results:
        table, below = _summary_table(results, console.size.width)
        console.print(table)
        for r in below:
            # too narrow a terminal for an error column: each error under the table, full width
            console.print(_error_text(r, Text(f"{r.name}: ", "bold")))
    ok = sum(r.succeeded for r in results)
    all_ok = ok == len(results)
    console.print(
        Text(f"{ok} of {len(results)} hosts succeeded", "bold green" if all_ok else "bold red")
    )
    reboot = [r.name for r in results if r.status is Status.REBOOT_REQUIRED]
    if reboot:
        console.print(Text(f"reboot required on: {', '.join(reboot)}", "bold yellow"))


#: an error column narrower than this breaks errors into fragments: they go under the table
_ERROR_COLUMN_MIN = 36


def _error_text(r: HostResult, start: Text | None = None) -> Text:
    error = start or Text()
    if r.error:
        error.append(shorten_store_paths(_ANSI.sub("", r.error)), "red")
    if r.hint:
        error.append("\n" if r.error else "")
        error.append(f"hint: {shorten_store_paths(clean_line(r.hint))}", "dim")
    return error


def _summary_table(results: list[HostResult], width: int) -> tuple[Table, list[HostResult]]:
    """The table, and the results whose errors are shown under it instead of in it."""
    seen = list(dict.fromkeys(name for r in results for name, _ in r.durations))
    phases = [p for p in _PHASE_ORDER if p in seen] + [p for p in seen if p not in _PHASE_ORDER]
    took: list[dict[str, float]] = []
    for r in results:
        per: dict[str, float] = {}
        for name, seconds in r.durations:
            per[name] = per.get(name, 0.0) + seconds
        took.append(per)
    systems = [short_store_path(r.system) if r.system else "" for r in results]

    # Widths chosen here rather than by rich, which squeezes every column alike: statuses and
    # times never wrap; the system path is cut (its hash stays); errors get the rest and wrap.
    gap = 3  # padding on both sides and the (blank) column divider of SIMPLE_HEAD
    host_w = min(max([len("host"), *(len(r.name) for r in results)]), 32)
    result_w = max([len("result"), *(len(r.status.value) for r in results)])
    phase_w = [max([len(p), *(len(format_duration(t[p])) for t in took if p in t)]) for p in phases]
    system_w = min(max([len("system"), *(len(s) for s in systems)]), 36)
    fixed = result_w + sum(phase_w) + gap * (3 + len(phases))
    errors = [len(r.error or "") + len(r.hint or "") for r in results]
    error_min = min(max([len("error"), *errors]), _ERROR_COLUMN_MIN)
    if width - fixed - host_w - system_w < error_min:
        system_w = max(width - fixed - host_w - error_min, min(system_w, 14))
    if width - fixed - host_w - system_w < error_min:
        host_w = max(width - fixed - system_w - error_min, min(host_w, 12))
    error_w = max(width - fixed - host_w - system_w, 8)
    failed = [r for r in results if r.error or r.hint]
    below = failed if failed and error_w < error_min else []

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("host", style="bold", overflow="fold", width=host_w)
    table.add_column("result", no_wrap=True, width=result_w)
    table.add_column("system", no_wrap=True, overflow="ellipsis", width=system_w)
    for phase, w in zip(phases, phase_w, strict=True):
        table.add_column(phase, justify="right", no_wrap=True, width=w)
    if not below:
        table.add_column("error", overflow="fold", width=error_w)
    for r, per, system in zip(results, took, systems, strict=True):
        table.add_row(
            r.name,
            Text(r.status.value, STATUS_STYLE[r.status]),
            system,
            *(format_duration(per[p]) if p in per else "" for p in phases),
            *(() if below else (_error_text(r),)),
        )
    return table, below
