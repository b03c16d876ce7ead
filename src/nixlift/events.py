"""Typed progress events: the only thing a renderer sees of the core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nixlift.model import Goal, HostResult, Stage


@dataclass(frozen=True)
class Phase:
    """A host entered a stage of its work (connect, build, copy, activate, …)."""

    host: str
    phase: Stage
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    """The hosts a command will act on, in display order; sent once, before anything else."""

    hosts: tuple[str, ...]
    goal: Goal


@dataclass(frozen=True)
class Progress:
    """How far a host's build or copy is (from nix's --log-format internal-json)."""

    host: str
    phase: Stage  # BUILD or COPY
    done: int
    expected: int
    unit: str  # "paths" | "bytes" | "builds"
    #: a copy counted in paths: the NAR bytes of the paths it has sent, and of all it will send
    #: (known only when the host lacks the whole closure); None when not known
    bytes_done: int | None = None
    bytes_expected: int | None = None


@dataclass(frozen=True)
class Output:
    """A line a command printed for a host (build log, activation output)."""

    host: str
    line: str
    #: a line of a build that several hosts' systems need: all of them (each gets the line;
    #: a renderer that shows lines once per host may show it once, for `shared[0]`)
    shared: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """What a host said that is the command's answer, not its progress: shown whatever the
    verbosity (dry-activate's "would start …" lines)."""

    host: str
    #: what it is, e.g. "dry-activate"
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Notice:
    """Something a person should read that is not an error (a host needs a reboot, …)."""

    host: str | None
    message: str


@dataclass(frozen=True)
class Finished:
    """A host is done, one way or another."""

    result: HostResult


Event = Plan | Phase | Progress | Output | Report | Notice | Finished
Emit = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An Emit for callers that show no progress."""


def tee(*sinks: Emit) -> Emit:
    """One Emit feeding several renderers."""

    def emit(event: Event) -> None:
        for sink in sinks:
            sink(event)

    return emit
