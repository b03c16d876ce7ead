"""Deploy a network: per host, concurrently, build → connect → copy → activate.

A host's failure is its own: it ends that host's pipeline with a failed result and never touches
the others. Each phase that talks to hosts has its own concurrency limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nixlift.deploy import activate as activation
from nixlift.deploy import hoststate
from nixlift.deploy.build import build, build_on_target
from nixlift.deploy.copy import copy
from nixlift.errors import NixliftError
from nixlift.events import Emit, Finished, Notice, Phase
from nixlift.model import Goal, HostResult, Machine, Network, Status
from nixlift.nix.argv import NixSettings
from nixlift.transport.ssh import SshSession, SshTarget, control_directory


@dataclass(frozen=True)
class DeployOptions:
    goal: Goal = Goal.SWITCH
    settings: NixSettings = field(default_factory=NixSettings)
    #: where GC roots of built systems live while (or after, with --keep-result) deploying
    gc_roots: Path = Path("/tmp")
    #: True forces activation even where deployment.alwaysActivate is false
    force_activate: bool = False
    connect_timeout: int = 10
    #: hosts copied to / activated at once; 0 = no limit
    parallel: int = 10


class _Clock:
    def __init__(self) -> None:
        self.durations: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.durations.append((name, round(time.monotonic() - start, 3)))


@contextlib.asynccontextmanager
async def _limit(sem: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if sem is None:
        yield
    else:
        async with sem:
            yield


async def deploy(network: Network, options: DeployOptions, emit: Emit) -> list[HostResult]:
    """Run every selected machine's pipeline; return one result per machine, in order."""
    sem = asyncio.Semaphore(options.parallel) if options.parallel > 0 else None
    async with control_directory() as control:
        results = await asyncio.gather(
            *(
                _host(machine, control / str(i), options, sem, emit)
                for i, machine in enumerate(network.machines)
            )
        )
    return list(results)


async def _host(
    machine: Machine,
    control_path: Path,
    options: DeployOptions,
    sem: asyncio.Semaphore | None,
    emit: Emit,
) -> HostResult:
    name = machine.name
    goal = options.goal
    clock = _Clock()
    copied = activated = False
    status = Status.OK
    session: SshSession | None = None
    connecting: asyncio.Task[SshSession] | None = None
    try:
        on_target = machine.deployment.build_on_target
        if goal.copies or on_target:
            # The handshake overlaps the build instead of following it.
            target = SshTarget.for_machine(machine, options.connect_timeout)
            session = SshSession(target, control_path)
            connecting = asyncio.create_task(session.__aenter__())
        if not on_target:
            emit(Phase(name, "build", machine.system))
            with clock.phase("build"):
                await build(machine, options.settings, options.gc_roots, emit)
        if session is not None and connecting is not None:
            emit(Phase(name, "connect", session.target.destination))
            with clock.phase("connect"):
                await connecting
            if on_target:
                emit(Phase(name, "build", f"{machine.system}, on the host"))
                with clock.phase("build"):
                    await build_on_target(session, machine, emit)
        if session is not None and goal.copies:
            probe = await hoststate.probe(session, machine.out_path)
            if not probe.has_system:
                async with _limit(sem):
                    emit(Phase(name, "copy", machine.out_path))
                    with clock.phase("copy"):
                        await copy(session.target, machine.out_path,
                                   use_substitutes=machine.deployment.use_substitutes, emit=emit)
                copied = True
            if goal.activates:
                always = options.force_activate or machine.deployment.always_activate
                if not activation.needs_activation(goal, machine.out_path, probe.state, always):
                    status = Status.UNCHANGED
                    emit(Phase(name, "unchanged", "already runs this system"))
                else:
                    async with _limit(sem):
                        emit(Phase(name, "activate", goal.value))
                        with clock.phase("activate"):
                            outcome = await activation.activate(
                                session, machine.out_path, goal, emit)
                    activated = True
                    if outcome is activation.Outcome.REBOOT_REQUIRED:
                        status = Status.REBOOT_REQUIRED
                        emit(Notice(name, "activated; switch-to-configuration asks for a reboot"))
        result = HostResult(name, status, machine.out_path, durations=tuple(clock.durations),
                            copied=copied, activated=activated)
    except NixliftError as e:
        result = HostResult(name, Status.FAILED, machine.out_path, error=str(e),
                            hint=e.hint or None, durations=tuple(clock.durations),
                            copied=copied, activated=activated, detail=_detail(e))
    finally:
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        if session is not None:
            await session.close()
    emit(Finished(result))
    return result


def _detail(error: NixliftError) -> str | None:
    tail = getattr(error, "stderr_tail", "")
    return tail or None
