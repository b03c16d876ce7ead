"""Reading nix's `--log-format internal-json`: human lines and progress, as data.

Each line nix writes is `@nix {json}`: activities start and stop, report results (a build log
line, progress counters) or carry a message. Lines without the prefix are passed through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from nixlift import proc
from nixlift.errors import CommandError, NixliftError
from nixlift.events import Emit, Event, Output, Progress
from nixlift.model import Stage
from nixlift.nix.drvgraph import Owners

logger = logging.getLogger("nixlift.nix")

PREFIX = "@nix "
# nix colours its messages even in JSON; a tail shown later or written to a file wants text
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Activity types (nix/src/libutil/logging.hh)
ACT_COPY_PATH = 100
ACT_COPY_PATHS = 103
ACT_BUILDS = 104
ACT_BUILD = 105
# Result types
RES_BUILD_LOG_LINE = 101
RES_PROGRESS = 105
RES_SET_EXPECTED = 106
RES_POST_BUILD_LOG_LINE = 107

#: nix's message levels: error, warn, notice, info, talkative, chatty, debug, vomit
SHOWN_LEVEL = 3


@dataclass(frozen=True)
class Counts:
    """A progress counter from nix's log: done of expected, in paths, bytes or builds."""

    done: int
    expected: int
    unit: str  # "paths" | "bytes" | "builds"
    #: of a copy counted in paths: the NAR bytes of the paths sent so far, and of all it will
    #: send; None when not known (see NixLog.know_sizes)
    bytes_done: int | None = None
    bytes_expected: int | None = None


class NixLog:
    """Feeds on nix's stderr lines; keeps the human-readable tail and the latest counters."""

    def __init__(self, tail: int = 200) -> None:
        self.lines: deque[str] = deque(maxlen=tail)
        self._types: dict[int, int] = {}
        self._bytes: dict[int, tuple[int, int]] = {}
        self.paths: Counts | None = None
        self.builds: Counts | None = None
        #: called with a derivation's path when nix's build of it ends (success or not)
        self.on_build_end: Callable[[str], None] | None = None
        self._building: dict[int, str] = {}
        #: of the line fed last: its activity (None for a message), and the derivation whose
        #: build it started or stopped (for a relay that says which host a build is for)
        self.activity: int | None = None
        self.build_started: str | None = None
        self.build_stopped: str | None = None
        #: a copy's bytes (nix 2.8 names each path it sends, not its size): the NAR sizes of
        #: what it may send once known, the path of each path's activity, the paths sent
        self._sizes: Mapping[str, int] | None = None
        self._closure_bytes = 0
        self._copying: dict[int, str] = {}
        self._sent: list[str] = []
        #: the NAR bytes of the paths sent; None while (or where) a size is not known
        self.bytes_sent: int | None = None

    @property
    def tail(self) -> str:
        return "\n".join(self.lines)

    def know_sizes(self, sizes: Mapping[str, int]) -> None:
        """The NAR size of each path in the closure a copy sends (this machine's store):
        from now on its paths' counters have bytes too, of the paths sent already as well."""
        self._sizes = sizes
        self._closure_bytes = sum(sizes.values())
        self.bytes_sent = 0
        for path in self._sent:
            self._add_bytes(path)
        if self.paths is not None:
            self.paths = self._copy_counts(self.paths.done, self.paths.expected)

    def _add_bytes(self, path: str) -> None:
        size = self._sizes.get(path) if self._sizes is not None else None
        # a path of unknown size makes the sum unknown, not smaller
        if size is None or self.bytes_sent is None:
            self.bytes_sent = None
        else:
            self.bytes_sent += size

    def _copy_counts(self, done: int, expected: int) -> Counts:
        total = None
        if self._sizes is not None and expected == len(self._sizes):
            # nix says how many paths the host lacks, not which: all of the closure's, here
            total = self._closure_bytes
        return Counts(done, expected, "paths", self.bytes_sent, total)

    def bytes(self) -> Counts | None:
        if not self._bytes:
            return None
        done = sum(d for d, _ in self._bytes.values())
        expected = sum(e for _, e in self._bytes.values())
        return Counts(done, expected, "bytes")

    def feed(self, raw: str) -> tuple[str | None, Counts | None]:
        """One stderr line in; out: a line for people (or None), new counters (or None)."""
        self.activity = self.build_started = self.build_stopped = None
        if not raw.startswith(PREFIX):
            self.lines.append(raw)
            return raw, None
        try:
            event = json.loads(raw[len(PREFIX) :])
        except json.JSONDecodeError:
            self.lines.append(raw)
            return raw, None
        action = event.get("action")
        if action in ("start", "stop", "result"):
            self.activity = int(str(event.get("id", -1)))
        if action == "msg":
            if int(event.get("level", 0)) > SHOWN_LEVEL:
                return None, None
            text = _ANSI.sub("", str(event.get("msg", ""))).rstrip()
            for line in text.splitlines() or [""]:
                self.lines.append(line)
            return text, None
        if action == "start":
            kind = int(event.get("type", 0))
            self._types[int(event["id"])] = kind
            text = str(event.get("text", ""))
            if kind == ACT_COPY_PATHS:
                # nix-copy-closure says how many ("copying 12 paths") but reports no progress
                words = text.split()
                expected = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
                self.paths = self._copy_counts(0, expected)
                self.lines.append(text)
                return text, self.paths
            fields = event.get("fields")
            if kind == ACT_COPY_PATH:
                if isinstance(fields, list) and fields:
                    self._copying[int(event["id"])] = str(fields[0])  # [path, from, to]
                # one line per path would bury everything else in the tail
                return None, None
            if kind == ACT_BUILD and isinstance(fields, list) and fields:
                self._building[int(event["id"])] = self.build_started = str(fields[0])
            if text and int(event.get("level", 0)) <= SHOWN_LEVEL:
                self.lines.append(text)
                return text, None
            return None, None
        if action == "stop":
            ident = int(event.get("id", -1))
            stopped = self._types.pop(ident, 0)
            drv = self.build_stopped = self._building.pop(ident, None)
            if drv is not None and self.on_build_end is not None:
                self.on_build_end(drv)
            if stopped == ACT_COPY_PATH:
                # (nix stops a path's activity when it has sent it, or when the copy failed)
                sent = self._copying.pop(ident, "")
                self._sent.append(sent)
                self._add_bytes(sent)
                if self.paths is not None:
                    self.paths = self._copy_counts(self.paths.done + 1, self.paths.expected)
                    return None, self.paths
            return None, None
        if action == "result":
            return self._result(event)
        return None, None

    def _result(self, event: dict[str, object]) -> tuple[str | None, Counts | None]:
        kind = event.get("type")
        fields = event.get("fields")
        if not isinstance(fields, list):
            return None, None
        if kind in (RES_BUILD_LOG_LINE, RES_POST_BUILD_LOG_LINE) and fields:
            line = str(fields[0])
            self.lines.append(line)
            return line, None
        activity = self._types.get(int(str(event.get("id", -1))))
        if kind == RES_PROGRESS and len(fields) >= 2:
            done, expected = int(fields[0]), int(fields[1])
            if activity == ACT_COPY_PATHS:
                self.paths = self._copy_counts(done, expected)
                return None, self.paths
            if activity == ACT_BUILDS:
                self.builds = Counts(done, expected, "builds")
                return None, self.builds
            if activity == ACT_COPY_PATH:
                self._bytes[int(str(event["id"]))] = (done, expected)
                return None, self.bytes()
        return None, None


def relay(
    hosts: Callable[[], Iterable[str]], phase: Stage, log: NixLog, emit: Emit
) -> Callable[[str], None]:
    """A line sink turning nix's internal-json stderr into Output and Progress events for the
    hosts the command is working for now (one nix command may build for several)."""

    def sink(line: str) -> None:
        text, counts = log.feed(line)
        for host in hosts():
            if text:
                for part in text.splitlines():
                    emit(Output(host, part))
            if counts is not None and counts.expected > 0:
                emit(
                    Progress(
                        host,
                        phase,
                        counts.done,
                        counts.expected,
                        counts.unit,
                        counts.bytes_done,
                        counts.bytes_expected,
                    )
                )

    return sink


_DRV = re.compile(r"/nix/store/[0-9a-z]{32}-[^\s'\"`]+\.drv")


def attributed_relay(
    owners: Owners, waiting: Callable[[], Iterable[str]], log: NixLog, emit: Emit
) -> Callable[[str], None]:
    """A line sink for one nix command building several machines' systems: each build's lines
    and counters go to the machines whose systems need that derivation (a line of a build
    several need says so: Output.shared), never to another machine's; what belongs to no
    derivation (fetching, nix's messages) goes to the machines still waiting."""
    hosts_of: dict[int, tuple[str, ...]] = {}
    built: dict[str, int] = {}

    def of_text(line: str) -> tuple[str, ...]:
        named = frozenset().union(*(owners.of(d) for d in _DRV.findall(line)))
        return tuple(sorted(named)) if named else tuple(waiting())

    def say(hosts: tuple[str, ...], line: str) -> None:
        shared = hosts if len(hosts) > 1 else ()
        for host in hosts:
            emit(Output(host, line, shared))

    def sink(line: str) -> None:
        text, counts = log.feed(line)
        if log.build_started is not None and log.activity is not None:
            mine = owners.of(log.build_started)
            hosts_of[log.activity] = tuple(sorted(mine)) if mine else tuple(waiting())
        if text:
            hosts = hosts_of.get(log.activity) if log.activity is not None else None
            for part in text.splitlines():
                say(hosts if hosts is not None else of_text(part), part)
        if log.build_stopped is not None and log.activity is not None:
            for host in hosts_of.pop(log.activity, ()):
                built[host] = built.get(host, 0) + 1
                expected = max(owners.counts.get(host, 0), built[host])
                emit(Progress(host, Stage.BUILD, built[host], expected, "builds"))
        elif counts is not None and counts.unit != "builds" and counts.expected > 0:
            for host in waiting():  # fetching from caches: for every system still waiting
                emit(Progress(host, Stage.BUILD, counts.done, counts.expected, counts.unit))

    return sink


#: where a copy's NAR sizes come from (nix/closure.py's NarSizes.of, for its paths)
SizeSource = Callable[[], Awaitable[Mapping[str, int]]]


class _Sizes:
    """A copy's NAR sizes, read here while it runs (nix 2.8 names each path it sends, not its
    size), for its counters to have bytes. The count of its last path waits for them while
    they are read (until nix ends at most): its last line then says its bytes, and no line
    more is said."""

    def __init__(self, log: NixLog, emit: Emit) -> None:
        self.log = log
        self.emit = emit
        self.held: list[Progress] = []
        self.task: asyncio.Task[None] | None = None

    def start(self, sizes: SizeSource) -> None:
        self.task = asyncio.create_task(self._read(sizes))

    async def _read(self, sizes: SizeSource) -> None:
        try:
            self.log.know_sizes(await sizes())
        except asyncio.CancelledError:
            logger.debug(
                "the copy ended before the NAR sizes of its paths were read: paths counted only"
            )
            raise
        except (NixliftError, ValueError, KeyError, TypeError) as e:
            logger.debug(
                "the NAR sizes of the paths to copy were not read (%s): paths counted only", e
            )
        finally:
            self._release()

    def emitting(self, event: Event) -> None:
        reading = self.task is not None and not self.task.done()
        if (
            reading
            and isinstance(event, Progress)
            and event.unit == "paths"
            and event.done >= event.expected
            and event.bytes_done is None
        ):
            self.held.append(event)
        else:
            self.emit(event)

    def _release(self) -> None:
        now = self.log.paths
        for event in self.held:
            if now is not None and (now.done, now.expected) == (event.done, event.expected):
                event = replace(event, bytes_done=now.bytes_done, bytes_expected=now.bytes_expected)
            self.emit(event)
        self.held.clear()

    async def stop(self) -> None:
        """Not waited for: stopped if nix ended first."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait([self.task])


async def run_logged(
    argv: Sequence[str],
    *,
    host: str,
    phase: Stage,
    emit: Emit,
    error: type[CommandError],
    what: str,
    hint: str | Callable[[str], str],
    env: Mapping[str, str] | None = None,
    log: NixLog | None = None,
    sizes: SizeSource | None = None,
) -> proc.Completed:
    """Run a nix command with --log-format internal-json: its progress and lines become events,
    and a failure raises `error` with the last lines a person can read (not the JSON); `hint`
    may be a function of those lines, so that it matches what went wrong.

    `log` reads nix's lines (the caller's, to read its counters after). With `sizes`, the NAR
    sizes of what a copy sends, it counts bytes too: they are read alongside it (its first
    moments are round trips to the host); if they are not read, or not before it ends, it
    counts paths only, and the copy goes on either way."""
    log = log if log is not None else NixLog()
    counting = _Sizes(log, emit)
    if sizes is not None:
        # made before nix is started, it first runs once nix has been spawned (asyncio starts
        # a process before its first wait): never a moment of nix's own time
        counting.start(sizes)
    try:
        done = await proc.run(
            [*argv, "--log-format", "internal-json"],
            env=env,
            check=False,
            host=host,
            on_stderr=relay(lambda: (host,), phase, log, counting.emitting),
            settle=True,  # (its ssh, killed by nix, is a ControlMaster's client)
        )
    finally:
        await counting.stop()
    if done.returncode != 0:
        program = argv[0].rsplit("/", 1)[-1]
        tail = "\n".join(list(log.lines)[-25:])
        raise error(
            f"{what} failed ({program} exit status {done.returncode})",
            argv=done.argv,
            returncode=done.returncode,
            stderr_tail=tail,
            hint=hint(tail) if callable(hint) else hint,
            host=host,
        )
    return done
