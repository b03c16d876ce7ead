"""When a deploy stops starting work: the failure policy and interruption.

A stop never cuts an activation short: phases that may be cancelled (builds, copies) are run
through `interruptible`; an activation, once begun, always runs to its end.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nixlift.errors import NixliftError, UsageError

T = TypeVar("T")


class Stopped(NixliftError):
    """This host's work was not started (or was cut short) because the rollout stopped."""

    kind = "stopped"


@dataclass(frozen=True)
class FailurePolicy:
    """By default a host's failure is its own; --fail-fast and --max-failures stop the rollout."""

    fail_fast: bool = False
    max_failures: int | None = None
    max_failure_percent: float | None = None

    @classmethod
    def parse(cls, fail_fast: bool, max_failures: str | None) -> FailurePolicy:
        if max_failures is None:
            return cls(fail_fast=fail_fast)
        text = max_failures.strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError(text)
                return cls(fail_fast=fail_fast, max_failure_percent=percent)
            count = int(text)
            if count < 0:
                raise ValueError(text)
            return cls(fail_fast=fail_fast, max_failures=count)
        except ValueError:
            raise UsageError(
                f"--max-failures {max_failures!r} is neither a count nor a percentage",
                hint="e.g. --max-failures 3 or --max-failures 10%",
            ) from None

    def tolerated(self, total: int) -> int | None:
        """How many failures the rollout takes before it stops; None: no limit."""
        limits = []
        if self.fail_fast:
            limits.append(0)
        if self.max_failures is not None:
            limits.append(self.max_failures)
        if self.max_failure_percent is not None:
            limits.append(math.floor(total * self.max_failure_percent / 100))
        return min(limits) if limits else None

    def describe(self) -> str:
        if self.fail_fast:
            return "--fail-fast"
        if self.max_failures is not None:
            return f"--max-failures {self.max_failures}"
        return f"--max-failures {self.max_failure_percent:g}%"


class Rollout:
    """Shared by every host's pipeline: counts failures, knows whether new work may start."""

    def __init__(self, policy: FailurePolicy, total: int) -> None:
        self.policy = policy
        self.total = total
        self.failures = 0
        self.reason: str | None = None
        self.interrupted = False
        self._stop = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self.reason is not None

    def failed(self) -> None:
        self.failures += 1
        limit = self.policy.tolerated(self.total)
        if limit is not None and self.failures > limit and self.reason is None:
            s = "s" if self.failures != 1 else ""
            self.reason = f"stopped after {self.failures} failed host{s} ({self.policy.describe()})"

    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: cancel builds and copies, let activations finish."""
        self.interrupted = True
        self.reason = "interrupted"
        self._stop.set()

    def may_start(self, what: str) -> None:
        if self.reason is not None:
            raise Stopped(f"{what} not started: {self.reason}")

    async def interruptible(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """Start `work()` unless the rollout stopped; cancel it if the deploy is interrupted."""
        self.may_start(what)
        task = asyncio.ensure_future(work())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped(f"{what} cut short: interrupted")
