"""Working on many hosts at once, the same way for every command: one connection per host, at
most `--parallel` hosts at a time, the failure policy, and Ctrl-C.

`Fleet` owns the connections (opened on demand, all closed at the end), the rollout (failure
count, stop, interruption) and the `--parallel` slots. `Fleet.each` runs one piece of work per
host for the commands that read or change hosts one by one (info, check, history,
list-generations, rollback, exec); a deploy uses the same Fleet for its own pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from nixlift.deploy.early import EarlyConnections, open_timed
from nixlift.deploy.rollout import FailurePolicy, Rollout, Stopped
from nixlift.errors import NixliftError, UsageError
from nixlift.events import Emit, Phase, discard
from nixlift.model import Machine, Stage
from nixlift.transport.base import Host
from nixlift.transport.elevate import Password
from nixlift.transport.local import LocalHost
from nixlift.transport.ssh import SshHost, new_control_directory

T = TypeVar("T")


@dataclass(frozen=True)
class Reach:
    """How hosts are reached."""

    connect_timeout: int = 10
    #: --ask-sudo-password: given to the escalation command of every host that needs one
    password: Password | None = None
    #: machines deployed on this machine itself (apply-local), not over SSH
    local: frozenset[str] = frozenset()
    #: --compress: ssh's compression for every host (deployment.compress asks it per host)
    compress: bool = False


def local_only(machine: Machine) -> UsageError:
    return UsageError(
        f"machine '{machine.name}' has deployment.targetHost = null: it is only deployed on itself",
        host=machine.name,
        hint="run `nixlift apply-local` on that machine (with deployment.allowLocalDeployment "
        "= true), or give it a targetHost",
    )


#: makes the Host of a machine (tests give fakes; nixlift uses ssh or this machine)
HostMaker = Callable[[Machine], Host]


class Fleet:
    def __init__(
        self,
        machines: Sequence[Machine],
        reach: Reach = Reach(),
        *,
        parallel: int = 10,
        policy: FailurePolicy | None = None,
        emit: Emit = discard,
        make_host: HostMaker | None = None,
        early: EarlyConnections | None = None,
    ) -> None:
        self.machines = tuple(machines)
        self.reach = reach
        self.emit = emit
        self._make_host = make_host
        #: connections opened while the network was evaluated (taken over where they fit)
        self._early = early
        self._opening: dict[str, asyncio.Task[float]] = {}
        #: how long each host's connection took to open (its SSH handshake)
        self.connect_seconds: dict[str, float] = {}
        self.rollout = Rollout(policy or FailurePolicy(), len(self.machines))
        self._slots = asyncio.Semaphore(parallel) if parallel > 0 else None
        self._hosts: dict[str, Host] = {}
        self._opened: list[Host] = []
        self._control: Path | None = None

    async def __aenter__(self) -> Self:
        # (a deploy's early connections made one already: shared, and removed by them)
        self._control = new_control_directory() if self._early is None else self._early.directory
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(h.close() for h in self._opened), return_exceptions=True)
        if self._control is not None and self._early is None:
            shutil.rmtree(self._control, ignore_errors=True)

    def interrupt(self) -> None:
        """Ctrl-C: stop starting work and cancel what may be cancelled."""
        self.rollout.interrupt()

    def control_path(self, name: str) -> Path:
        """A control socket's path in the Fleet's private directory, for another host."""
        assert self._control is not None, "a Fleet is used inside `async with`"
        return self._control / f"x-{name}"

    def host(self, machine: Machine) -> Host:
        """The machine's Host (not connected yet)."""
        found = self._hosts.get(machine.name)
        if found is not None:
            return found
        d = machine.deployment
        host: Host
        if self._make_host is not None:
            host = self._make_host(machine)
        elif machine.name in self.reach.local:
            host = LocalHost(
                machine.name, escalation=d.privilege_escalation, password=self.reach.password
            )
        elif d.target_host is None:
            raise local_only(machine)
        elif (taken := self._take_early(machine)) is not None:
            host, self._opening[machine.name] = taken
        else:
            assert self._control is not None, "a Fleet is used inside `async with`"
            host = SshHost.for_machine(
                machine,
                self._control / str(len(self._hosts)),
                connect_timeout=self.reach.connect_timeout,
                password=self.reach.password,
                compress=self.reach.compress,
            )
        self._hosts[machine.name] = host
        return host

    async def connect(self, machine: Machine) -> Host:
        """The machine's Host, connected (once; later calls return it as it is)."""
        host = self.host(machine)
        if host in self._opened:
            return host
        self.emit(Phase(machine.name, Stage.CONNECT, host.destination))
        opening = self._opening.pop(machine.name, None)
        seconds = await self.rollout.interruptible(
            "connecting", lambda: opening if opening is not None else open_timed(host)
        )
        self.connect_seconds[machine.name] = round(seconds, 3)
        self._opened.append(host)
        return host

    def _take_early(self, machine: Machine) -> tuple[Host, asyncio.Task[float]] | None:
        if self._early is None:
            return None
        return self._early.take(
            machine,
            password=self.reach.password is not None,
            compress=self.reach.compress,
            connect_timeout=self.reach.connect_timeout,
        )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the `--parallel` places for work on a host."""
        if self._slots is None:
            yield
        else:
            async with self._slots:
                yield

    @property
    def slots_full(self) -> bool:
        return self._slots is not None and self._slots.locked()

    async def each(
        self, work: Callable[[Machine, Host], Awaitable[T]], *, interruptible: bool = True
    ) -> dict[str, T | NixliftError]:
        """Run `work` for every machine, `--parallel` at a time; a host's error is its own and
        counts for the failure policy. `interruptible` work is cancelled by Ctrl-C (work that
        activates a system is not: it always runs to its end)."""

        async def one(machine: Machine) -> T | NixliftError:
            try:
                self.rollout.may_start(machine.name)
                async with self.slot():
                    self.rollout.may_start(machine.name)
                    host = await self.connect(machine)
                    if interruptible:
                        return await self.rollout.interruptible(
                            machine.name, lambda: work(machine, host)
                        )
                    return await work(machine, host)
            except Stopped as e:
                return e
            except NixliftError as e:
                self.rollout.failed()
                return e

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(m)) for m in self.machines]
        return {m.name: t.result() for m, t in zip(self.machines, tasks, strict=True)}


async def on_each(
    machines: Sequence[Machine],
    work: Callable[[Machine, Host], Awaitable[T]],
    *,
    reach: Reach = Reach(),
    parallel: int = 10,
    interruptible: bool = True,
    fleet_ready: Callable[[Fleet], None] | None = None,
) -> tuple[dict[str, T | NixliftError], Fleet]:
    """A Fleet for `machines`, `work` on each of them; `fleet_ready` sees the Fleet first
    (to hook Ctrl-C to it)."""
    async with Fleet(machines, reach, parallel=parallel) as fleet:
        if fleet_ready is not None:
            fleet_ready(fleet)
        return await fleet.each(work, interruptible=interruptible), fleet
