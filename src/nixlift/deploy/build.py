"""Build machines' systems: here (or on nix's remote builders), or on the host itself."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from nixlift import proc
from nixlift.agent.protocol import Agent
from nixlift.deploy.copy import served_store
from nixlift.errors import BuildError
from nixlift.events import Emit, Output, Phase, discard
from nixlift.model import Machine, Stage
from nixlift.nix import argv as nix_argv
from nixlift.nix import drvgraph
from nixlift.nix.argv import NixSettings
from nixlift.nix.logparse import NixLog, attributed_relay, run_logged


def _in_store(path: str) -> bool:
    """Whether a store path is here: one stat, cheaper than handing it to a thread."""
    return os.path.exists(path)


#: the hint of every failed build (nix keeps the whole log; the error carries its tail)
BUILD_HINT = "the failed derivation's log says why (`nix log DRV` shows all of it)"


async def build(machine: Machine, settings: NixSettings, gc_roots: Path, emit: Emit) -> str:
    """Realise the machine's toplevel, keeping it alive with a GC root under `gc_roots`."""
    root = gc_roots / machine.name
    await run_logged(
        nix_argv.realise(machine.drv_path, root, settings),
        host=machine.name,
        phase=Stage.BUILD,
        emit=emit,
        error=BuildError,
        what=f"building {machine.name}",
        hint=BUILD_HINT,
    )
    built = os.path.realpath(root)  # noqa: ASYNC240 (a readlink of a local GC root)
    if built != machine.out_path:
        raise BuildError(
            f"building {machine.name} produced {built}, not {machine.out_path}",
            host=machine.name,
            hint="report this as a bug in nixlift",
        )
    return built


async def register_built(
    machines: Sequence[Machine], settings: NixSettings, gc_roots: Path
) -> None:
    """Protect systems that are already in the store with GC roots: one nix call for all of
    them, instead of one per machine (what keeps a no-op redeploy of many hosts cheap)."""
    drvs = list(dict.fromkeys(m.drv_path for m in machines))
    if not drvs:
        return
    await proc.run(
        nix_argv.realise_many(drvs, gc_roots / ".built", settings),
        what="registering built systems",
        error=BuildError,
        hint=BUILD_HINT,
    )


async def build_on_target(agent: Agent, machine: Machine, emit: Emit) -> str:
    """deployment.buildOnTarget: send the derivations, let the host build its own system."""
    await realise_there(
        agent,
        [machine.drv_path],
        what=f"building {machine.name} on the host",
        on_line=lambda line: emit(Output(machine.name, line)),
    )
    return machine.out_path


async def realise_there(
    agent: Agent, drvs: Sequence[str], *, what: str, on_line: proc.LineSink, check: bool = True
) -> proc.Completed:
    """Send derivations to a host and build them there (as root, or through the daemon the
    agent serves when sudo wants a password)."""
    host = agent.host
    async with served_store(agent) as store:
        await host.copy_to(drvs, use_substitutes=False, emit=discard, remote_store=store)
        argv = ["nix-store", "--realise", *drvs, "--keep-going", "--no-gc-warning"]
        if store is not None:
            argv[1:1] = ["--store", store]
        return await host.run(
            argv,
            what=what,
            elevated=store is None,
            error=BuildError,
            check=check,
            on_stderr=on_line,
            stop_with_connection=True,
        )


class SharedBuild:
    """One nix-store for every machine that needs building: nix then builds a derivation that
    several systems share once, instead of one process per host waiting for another's lock; and
    each machine learns from nix's JSON log the moment its own system is built, so its copy starts
    while the others still build."""

    def __init__(
        self, machines: Sequence[Machine], settings: NixSettings, gc_roots: Path, emit: Emit
    ) -> None:
        self.machines = list(machines)
        self.settings = settings
        self.gc_roots = gc_roots
        self.emit = emit
        self.log = NixLog()
        loop = asyncio.get_running_loop()
        self._built: dict[str, asyncio.Future[None]] = {
            m.drv_path: loop.create_future() for m in self.machines
        }
        self.log.on_build_end = self._ended
        self._settling: set[asyncio.Task[None]] = set()

    def _ended(self, drv: str) -> None:
        future = self._built.get(drv)
        if future is not None and not future.done():
            task = asyncio.ensure_future(self._settle(drv, future))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(self, drv: str, future: asyncio.Future[None]) -> None:
        """nix ended a build of a machine's system: built if its output is there."""
        machine = next(m for m in self.machines if m.drv_path == drv)
        built = _in_store(machine.out_path)
        if built and not future.done():
            future.set_result(None)

    async def run(self) -> None:
        drvs = list(self._built)
        names = ", ".join(m.name for m in self.machines)

        def waiting() -> list[str]:
            return [m.name for m in self.machines if not self._built[m.drv_path].done()]

        try:
            # which machine each derivation is for: read before nix starts building them
            owners = await asyncio.to_thread(
                drvgraph.owners, {m.name: m.drv_path for m in self.machines}
            )
            await proc.run(
                [
                    *nix_argv.realise_many(drvs, self.gc_roots / ".shared", self.settings),
                    "--keep-going",
                    "--log-format",
                    "internal-json",
                ],
                check=False,
                what=f"building {names}",
                on_stderr=attributed_relay(owners, waiting, self.log, self.emit),
            )
        finally:
            for m in self.machines:
                future = self._built[m.drv_path]
                if future.done():
                    continue
                if _in_store(m.out_path):
                    future.set_result(None)
                else:
                    future.set_exception(
                        BuildError(
                            f"building {m.name} failed",
                            stderr_tail="\n".join(list(self.log.lines)[-25:]),
                            hint=BUILD_HINT,
                            host=m.name,
                        )
                    )

    def covers(self, machine: Machine) -> bool:
        return machine.drv_path in self._built

    def forget(self) -> None:
        """Retrieve the failures no host waited for (a stopped rollout), so none is reported
        as never retrieved."""
        for future in self._built.values():
            if future.done() and not future.cancelled():
                future.exception()

    async def wait(self, machine: Machine) -> str:
        await asyncio.shield(self._built[machine.drv_path])
        return machine.out_path


class LocalBuilds:
    """Every system a deploy builds on this machine, for the hosts' sequences to wait on:
    systems already in the store are only registered (one nix call for all), several to build
    share one nix-store (SharedBuild), and with --keep-result each is built on its own (a GC
    root of its own name), `build_parallel` at a time."""

    def __init__(
        self,
        machines: Sequence[Machine],
        settings: NixSettings,
        gc_roots: Path,
        emit: Emit,
        *,
        keep_roots: bool,
        build_parallel: int,
    ) -> None:
        self.machines = [m for m in machines if not m.deployment.build_on_target]
        self.settings = settings
        self.gc_roots = gc_roots
        self.emit = emit
        self.keep_roots = keep_roots
        self._slots = asyncio.Semaphore(max(1, build_parallel))
        self._prebuilt: set[str] = set()
        self._shared: SharedBuild | None = None
        self._shared_task: asyncio.Future[None] | None = None
        #: set once the builds have started (or could not be started: `_unstarted` says why)
        self._started = asyncio.Event()
        self._unstarted: BaseException | None = None

    async def register_prebuilt(self) -> None:
        """Systems already in the store need no build: GC roots for all of them in one call."""
        if self.keep_roots:
            return
        present = [m for m in self.machines if _in_store(m.out_path)]
        if present:
            await register_built(present, self.settings, self.gc_roots)
            self._prebuilt = {m.name for m in present}

    def in_store(self, machine: Machine) -> bool:
        """Whether the machine's system is in the store here already (built before this run)."""
        return _in_store(machine.out_path)

    def start(self, skip: Sequence[str] = ()) -> None:
        """Several machines to build: one nix-store for all of them, starting now."""
        self._started.set()
        wanted = [m for m in self.machines if m.name not in self._prebuilt and m.name not in skip]
        if self.keep_roots or len(wanted) < 2:
            return
        self._shared = SharedBuild(wanted, self.settings, self.gc_roots, self.emit)
        self._shared_task = asyncio.ensure_future(self._shared.run())

    def not_started(self, why: BaseException) -> None:
        """The builds will not start: whoever waits for one gets `why`."""
        self._unstarted = why
        self._started.set()

    async def wait(self, machine: Machine) -> None:
        # a host's sequence may begin before every host is connected: no build before that
        await self._started.wait()
        if self._unstarted is not None:
            raise self._unstarted
        if machine.name in self._prebuilt:
            self.emit(Phase(machine.name, Stage.BUILD, "already built"))
            return
        if self._shared is not None and self._shared.covers(machine):
            await self._shared.wait(machine)
            return
        async with self._slots:
            await build(machine, self.settings, self.gc_roots, self.emit)

    def built_on(self, machine: Machine) -> None:
        return None

    def cancel(self) -> None:
        if self._shared_task is not None:
            self._shared_task.cancel()

    async def close(self) -> None:
        if self._shared_task is not None:
            self._shared_task.cancel()
            await asyncio.gather(self._shared_task, return_exceptions=True)
        if self._shared is not None:
            self._shared.forget()
