"""Reading nix's `--log-format internal-json`: human lines and progress, as data.

Each line nix writes is `@nix {json}`: activities start and stop, report results (a build log
line, progress counters) or carry a message. Lines without the prefix are passed through.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nixlift import proc
from nixlift.errors import CommandError
from nixlift.events import Emit, Output, Progress
from nixlift.model import Stage
from nixlift.nix.drvgraph import Owners

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

    @property
    def tail(self) -> str:
        return "\n".join(self.lines)

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
                self.paths = Counts(0, expected, "paths")
                self.lines.append(text)
                return text, self.paths
            if kind == ACT_COPY_PATH:
                # one line per path would bury everything else in the tail
                return None, None
            fields = event.get("fields")
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
            if stopped == ACT_COPY_PATH and self.paths is not None:
                self.paths = Counts(self.paths.done + 1, self.paths.expected, "paths")
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
                self.paths = Counts(done, expected, "paths")
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
                emit(Progress(host, phase, counts.done, counts.expected, counts.unit))

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
) -> proc.Completed:
    """Run a nix command with --log-format internal-json: its progress and lines become events,
    and a failure raises `error` with the last lines a person can read (not the JSON); `hint`
    may be a function of those lines, so that it matches what went wrong."""
    log = NixLog()
    done = await proc.run(
        [*argv, "--log-format", "internal-json"],
        env=env,
        check=False,
        host=host,
        on_stderr=relay(lambda: (host,), phase, log, emit),
        settle=True,  # (its ssh, killed by nix, is a ControlMaster's client)
    )
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
