"""Deploy a network: connect to every host (and lock it) at once, build what is not built, and
run each host's sequence (deploy/host.py) concurrently.

Before any build, every host's SSH connection is opened at once (the reachability check); the
connections stay up and carry everything after. A host's sequence begins as soon as it is
connected and locked (a system built before the run is copied and activated while slower hosts
are still connecting), or, when a failure may stop the rollout (--fail-fast, --max-failures),
once every host is. A host starts copying as soon as its own system is built. A host's failure
is its own unless the failure policy stops the rollout; a stop or an interruption never cuts an
activation short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nixlift.agent.protocol import Agent
from nixlift.deploy.build import LocalBuilds
from nixlift.deploy.buildhost import AllBuilds, RemoteBuilds
from nixlift.deploy.buildspec import BuildHostSpec, spec_for
from nixlift.deploy.copy import copy_once
from nixlift.deploy.early import EarlyConnections
from nixlift.deploy.fanout import Fleet, HostMaker
from nixlift.deploy.host import HostSequence, Ready
from nixlift.deploy.keys import Key
from nixlift.deploy.lock import HostLock, holder_info
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.rollout import Stopped
from nixlift.errors import NixliftError
from nixlift.events import Emit, Finished, Notice, Plan
from nixlift.model import HostResult, Machine, Network
from nixlift.nix.closure import NarSizes

if TYPE_CHECKING:
    from nixlift.deploy.cache import Pusher  # (a deploy with a cache only)

#: an SSH handshake this slow (seconds) makes a link slow: see Deployment._early_copy (a 50 ms
#: round trip takes ~0.4 s; a host on a LAN, or in this machine's test bed, ~0.05 s)
FAR = 0.2

log = logging.getLogger("nixlift.deploy")


async def _stop(task: asyncio.Future[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        with contextlib.suppress(BaseException):
            await task


def waves(machines: Sequence[Machine], ordering: Sequence[str]) -> list[list[Machine]]:
    """The hosts in the order morph's network.ordering.tags gives: those of the first tag, then
    the rest's of the next tag, …, then all others (without ordering: one wave of all)."""
    rest = list(machines)
    found: list[list[Machine]] = []
    for tag in ordering:
        wave = [m for m in rest if tag in m.deployment.tags]
        if wave:
            found.append(wave)
            rest = [m for m in rest if tag not in m.deployment.tags]
    return [*found, rest] if rest else found


class Deployment:
    """One run of the pipeline over a network's selected machines."""

    def __init__(
        self,
        network: Network,
        options: DeployOptions,
        emit: Emit,
        *,
        keys: Mapping[str, Sequence[Key]] | None = None,
        make_host: HostMaker | None = None,
        builds: LocalBuilds | None = None,
        early: EarlyConnections | None = None,
    ) -> None:
        self.network = network
        self.options = options
        self.emit = emit
        #: each machine's keys and secrets (checked before anything started)
        self.keys = keys or {}
        self.fleet = Fleet(
            network.machines,
            options.reach,
            parallel=options.parallel,
            policy=options.policy,
            emit=emit,
            make_host=make_host,
            early=early,
        )
        #: machines built on a build host, by build host
        self._build_hosts: dict[BuildHostSpec, list[Machine]] = {}
        for m in network.machines:
            spec = None if m.deployment.build_on_target else spec_for(m, options.build_host)
            if spec is not None:
                self._build_hosts.setdefault(spec, []).append(m)
        remote = {m.name for ms in self._build_hosts.values() for m in ms}
        self.local_builds = builds or LocalBuilds(
            [m for m in network.machines if m.name not in remote],
            options.settings,
            options.gc_roots,
            emit,
            keep_roots=options.keep_roots,
            build_parallel=options.build_parallel,
        )
        self.builds = AllBuilds(self.local_builds, [])
        self._locks: list[HostLock] = []
        self._early: list[asyncio.Task[int | None]] = []
        reached = sum(1 for m in network.machines if self._needs_host(m))
        self._few_hosts = reached <= (os.cpu_count() or 1)
        self.pusher: Pusher | None = None
        if options.cache is not None:
            from nixlift.deploy.cache import Pusher

            self.pusher = Pusher(options.cache, emit)
        #: the NAR sizes the systems' copies count their bytes with: read once for all
        self.sizes = NarSizes(
            [m.out_path for m in network.machines if m.name not in remote], options.settings
        )

    @property
    def interrupted(self) -> bool:
        return self.fleet.rollout.interrupted

    def interrupt(self) -> None:
        """Ctrl-C: stop starting work, cancel builds and copies, let activations finish."""
        if not self.fleet.rollout.interrupted:
            self.emit(
                Notice(
                    None,
                    "interrupted: cancelling builds and copies; activations "
                    "already running will finish",
                )
            )
        self.fleet.interrupt()
        self.local_builds.cancel()

    async def run(self) -> list[HostResult]:
        machines = self.network.machines
        self.emit(Plan(tuple(m.name for m in machines), self.options.goal))
        async with self.fleet:
            self._start_build_hosts()
            connecting = {m.name: asyncio.ensure_future(self._connect(m)) for m in machines}
            starting = asyncio.ensure_future(self._start_builds(connecting))
            try:
                if self.options.policy.tolerated(len(machines)) is not None:
                    # a failure may stop the rollout: every host's reachability and lock are
                    # known before any host's work begins
                    await starting
                results: dict[str, HostResult] = {}
                # morph's network.ordering.tags: each tag's hosts finish before the next begin.
                # A host's sequence begins once it is connected and locked (its build, if any,
                # waits for the builds, which start once every host is connected).
                for wave in waves(machines, self.network.ordering):
                    async with asyncio.TaskGroup() as group:
                        tasks = [group.create_task(self._host(m, connecting[m.name])) for m in wave]
                    results.update((t.result().name, t.result()) for t in tasks)
                await starting
            finally:
                await asyncio.gather(*(_stop(t) for t in (starting, *connecting.values())))
                await asyncio.gather(*(_stop(t) for t in self._early))
                await self.sizes.close()
                await self.local_builds.close()
                await asyncio.gather(*(r.close() for r in self.builds.remote))
                if self.pusher is not None:
                    self.pusher.forget()
                await asyncio.gather(*(lock.release() for lock in self._locks))
        return [results[m.name] for m in machines]

    def _needs_host(self, m: Machine) -> bool:
        return self.options.goal.copies or m.deployment.build_on_target

    async def _start_builds(self, connecting: Mapping[str, asyncio.Future[Ready]]) -> None:
        """The builds start once every host is connected (unreachable and locked hosts are
        known before anything is built); the GC roots of what is built already overlap the
        handshakes."""
        try:
            if not self.fleet.rollout.stopping:
                await self.local_builds.register_prebuilt()
            ready = await asyncio.gather(*connecting.values())
        except BaseException as e:
            self.local_builds.not_started(
                e if isinstance(e, NixliftError) else Stopped("the builds were not started")
            )
            raise
        self.local_builds.start(
            skip=[n for n, r in zip(connecting, ready, strict=True) if r.problem is not None]
        )

    def _start_build_hosts(self) -> None:
        """Each build host starts at once: connect, send the derivations, build."""
        remote = [
            RemoteBuilds(
                spec,
                machines,
                self.fleet.control_path(str(i)),
                self.emit,
                connect_timeout=self.options.reach.connect_timeout,
            )
            for i, (spec, machines) in enumerate(self._build_hosts.items())
        ]
        for r in remote:
            r.start()
        self.builds = AllBuilds(self.local_builds, remote)

    async def _connect(self, m: Machine) -> Ready:
        """Open the host's connection and take its lock (all hosts at once: unreachable and
        locked hosts are known before anything is built)."""
        rollout = self.fleet.rollout
        if not self._needs_host(m):
            return Ready()
        try:
            host = await self.fleet.connect(m)
        except NixliftError as e:
            return Ready(problem=e)
        seconds = self.fleet.connect_seconds.get(m.name, 0.0)
        agent = Agent(host)
        if not self.options.goal.copies:
            return Ready(host, agent, connect_seconds=seconds)
        # a push takes the same session without the lock: it reads the host's state and
        # takes the record, but nothing is activated
        activates = self.options.goal.activates
        lock = HostLock(
            agent,
            holder_info(self.network.deployment_name),
            self.options.lock_wait,
            m.out_path,
            want_keys=activates and bool(self.keys.get(m.name)) and self.options.upload_keys,
            exclusive=activates,
        )
        self._locks.append(lock)
        early = self._early_copy(m, agent, seconds)
        try:
            locked = await rollout.interruptible("locking", lock.acquire)
        except NixliftError as e:
            await _stop(early)
            return Ready(host, agent, problem=e, connect_seconds=seconds)
        if early is not None and locked.probe.has_system:
            log.debug("%s already has its system: the early copy is stopped", m.name)
            await _stop(early)
            early = None
        return Ready(
            host,
            agent,
            locked.probe,
            keys=locked.keys,
            lock=lock,
            connect_seconds=seconds,
            early_copy=early,
        )

    def _early_copy(
        self, m: Machine, agent: Agent, seconds: float
    ) -> asyncio.Task[int | None] | None:
        """Over a slow link (an SSH handshake of FAR seconds or more), a system that is already
        built here starts its copy alongside the lock's call: round trips of the one overlap
        the other's. One try (a failed one is done again, with retries, in its usual place),
        through the usual copy slots; stopped at once when the lock's answer says the host has
        the system. Only in a deploy to at most as many hosts as this machine has cores: more
        handshakes at once than cores make them slow here, whatever the links. Not where the
        copy needs the agent (a store bridge for sudo with a
        password), a cache, a build host or building on the host."""
        host = agent.host
        if (
            seconds < FAR
            or not self._few_hosts
            or host.is_local
            or host.elevation.password is not None
            or m.deployment.build_on_target
            or self.pusher is not None
            or any(m in ms for ms in self._build_hosts.values())
            or not self.local_builds.in_store(m)
        ):
            return None
        log.debug(
            "%s: a slow link (%.2f s to connect): copying alongside the lock", m.name, seconds
        )

        async def early() -> int | None:
            async with self.fleet.slot():
                return await copy_once(
                    agent,
                    [m.out_path],
                    use_substitutes=m.deployment.use_substitutes,
                    emit=self.emit,
                    daemon=True,
                    sizes=self.sizes,
                )

        task = asyncio.ensure_future(early())
        self._early.append(task)
        return task

    async def _host(self, m: Machine, connecting: asyncio.Future[Ready]) -> HostResult:
        ready = await connecting
        result = await HostSequence(
            m,
            self.options,
            ready,
            fleet=self.fleet,
            builds=self.builds,
            keys=self.keys.get(m.name, ()),
            pusher=self.pusher,
            deployment_name=self.network.deployment_name,
            emit=self.emit,
            sizes=self.sizes,
        ).run()
        if result.failed:
            self.fleet.rollout.failed()
        self.emit(Finished(result))
        return result
