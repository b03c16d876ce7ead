"""Deploy a network: per host, concurrently, connect → build → copy → activate.

Before any build, every host's SSH connection is opened at once (the reachability check); the
connections stay up and carry everything after. A host starts copying as soon as its own system
is built. A host's failure is its own unless the failure policy stops the rollout; a stop or an
interruption never cuts an activation short.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from nixlift import proc
from nixlift.deploy import activate as activation
from nixlift.deploy import health, history, hostside, hoststate, reboot
from nixlift.deploy.build import SharedBuild, build, build_on_target, register_built
from nixlift.deploy.copy import copy
from nixlift.deploy.lock import HostLock, holder_info
from nixlift.deploy.rollout import FailurePolicy, Rollout, Stopped
from nixlift.errors import NixliftError, SshError
from nixlift.events import Emit, Finished, Notice, Phase, Plan
from nixlift.model import Goal, HostResult, HostState, Machine, Network, Status
from nixlift.nix.argv import NixSettings
from nixlift.transport.ssh import (
    SshSession,
    SshTarget,
    control_directory,
    diagnose,
    remote_command,
)

T = TypeVar("T")


@dataclass(frozen=True)
class DeployOptions:
    goal: Goal = Goal.SWITCH
    settings: NixSettings = field(default_factory=NixSettings)
    #: where GC roots of built systems live while (or after, with --keep-result) deploying
    gc_roots: Path = Path("/tmp")
    #: roots named after machines (kept for the user): one nix call per machine
    keep_roots: bool = False
    #: True forces activation even where deployment.alwaysActivate is false
    force_activate: bool = False
    connect_timeout: int = 10
    #: hosts copied to / activated at once; 0 = no limit
    parallel: int = 10
    #: local builds running at once (each a nix-store process with nix's own job limit)
    build_parallel: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    policy: FailurePolicy = field(default_factory=FailurePolicy)
    #: unreachable hosts are reported as skipped instead of failed
    skip_unreachable: bool = False
    #: seconds to wait for another deployer's lock on a host (0: fail at once)
    lock_wait: int = 0
    #: --no-auto-rollback / --no-magic-rollback for this run
    auto_rollback: bool = True
    magic_rollback: bool = True
    #: the network's git commit, for the history kept on each host
    commit: str | None = None
    #: run deployment.preDeployChecks and healthChecks (--no-checks turns them off)
    health_checks: bool = True
    #: --reboot: activate for boot, reboot, check the host came back on the new system
    reboot: bool = False
    #: --allow-reboot: reboot hosts whose activation says a reboot is required (exit 100)
    allow_reboot: bool = False
    reboot_timeout: int = 300


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
async def _slot(sem: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if sem is None:
        yield
    else:
        async with sem:
            yield


class Deployment:
    """One run of the pipeline over a network's selected machines."""

    def __init__(self, network: Network, options: DeployOptions, emit: Emit) -> None:
        self.network = network
        self.options = options
        self.emit = emit
        self.rollout = Rollout(options.policy, len(network.machines))
        limit = options.parallel
        self._host_slots = asyncio.Semaphore(limit) if limit > 0 else None
        self._build_slots = asyncio.Semaphore(max(1, options.build_parallel))
        self._sessions: dict[str, SshSession] = {}
        self._locks: list[HostLock] = []
        #: hosts that cannot be worked on: unreachable (SshError) or locked by someone else
        self._not_ready: dict[str, NixliftError] = {}
        self._prebuilt: set[str] = set()
        self._connect_time: dict[str, float] = {}
        #: the host's state as read when its lock was taken (saves a round trip later)
        self._probes: dict[str, hoststate.Probe] = {}
        #: one nix-store building every machine that needs it (when there are several)
        self._shared: SharedBuild | None = None
        self._shared_task: asyncio.Future[None] | None = None

    def interrupt(self) -> None:
        """Ctrl-C: stop starting work, cancel builds and copies, let activations finish."""
        if not self.rollout.interrupted:
            self.emit(Notice(None, "interrupted: cancelling builds and copies; activations "
                                   "already running will finish"))
        self.rollout.interrupt()
        if self._shared_task is not None:
            self._shared_task.cancel()

    async def run(self) -> list[HostResult]:
        machines = self.network.machines
        self.emit(Plan(tuple(m.name for m in machines), self.options.goal.value))
        async with control_directory() as control:
            try:
                # Independent: the handshakes and nix's GC roots overlap.
                await asyncio.gather(self._connect_all(control), self._register_prebuilt())
                self._start_shared_build()
                results = await asyncio.gather(*(self._host(m) for m in machines))
            finally:
                if self._shared_task is not None:
                    self._shared_task.cancel()
                    await asyncio.gather(self._shared_task, return_exceptions=True)
                if self._shared is not None:
                    self._shared.forget()
                await asyncio.gather(*(lock.release() for lock in self._locks))
                await asyncio.gather(*(s.close() for s in self._sessions.values()))
        return list(results)

    # --- before any build ----------------------------------------------------------------

    def _needs_ssh(self, m: Machine) -> bool:
        return self.options.goal.copies or m.deployment.build_on_target

    async def _connect_all(self, control: Path) -> None:
        """Open every host's connection at once: unreachable hosts are known before building."""

        async def connect(i: int, m: Machine) -> None:
            target = SshTarget.for_machine(m, self.options.connect_timeout)
            session = SshSession(target, control / str(i))
            self.emit(Phase(m.name, "connect", target.destination))
            start = time.monotonic()
            try:
                await self.rollout.interruptible("connecting", session.__aenter__)
                self._connect_time[m.name] = round(time.monotonic() - start, 3)
            except SshError as e:
                self._not_ready[m.name] = e
                return
            except Stopped:
                return
            self._sessions[m.name] = session
            if self.options.goal.activates:
                lock = HostLock(session, holder_info(self.network.deployment_name),
                                self.options.lock_wait, m.out_path)
                self._locks.append(lock)
                try:
                    self._probes[m.name] = await self.rollout.interruptible(
                        "locking", lock.acquire)
                except (NixliftError, Stopped) as e:
                    self._not_ready[m.name] = e

        await asyncio.gather(*(connect(i, m) for i, m in enumerate(self.network.machines)
                               if self._needs_ssh(m)))

    async def _register_prebuilt(self) -> None:
        """Systems already in the store need no build: GC roots for all of them in one call."""
        if self.options.keep_roots:
            return
        present = [m for m in self.network.machines
                   if not m.deployment.build_on_target
                   and await asyncio.to_thread(os.path.exists, m.out_path)]
        if present and not self.rollout.stopping:
            await register_built(present, self.options.settings, self.options.gc_roots)
            self._prebuilt = {m.name for m in present}

    def _start_shared_build(self) -> None:
        """Several machines to build here: one nix-store for all of them (see SharedBuild).
        With --keep-result each gets a root of its own name, so each is built by itself."""
        wanted = [m for m in self.network.machines
                  if not m.deployment.build_on_target and m.name not in self._prebuilt
                  and m.name not in self._not_ready]
        if self.options.keep_roots or len(wanted) < 2 or self.rollout.stopping:
            return
        self._shared = SharedBuild(wanted, self.options.settings, self.options.gc_roots,
                                   self.emit)
        self._shared_task = asyncio.ensure_future(self._shared.run())

    # --- one host ------------------------------------------------------------------------

    async def _host(self, m: Machine) -> HostResult:
        run = _HostRun(self, m)
        result = await run.execute()
        if result.failed:
            self.rollout.failed()
        await self._record(m, result, run.touched)
        self.emit(Finished(result))
        return result

    async def _record(self, m: Machine, result: HostResult, touched: bool) -> None:
        """Append to the host's own history; a deploy that could not write it still counts."""
        session = self._sessions.get(m.name)
        if session is None or not touched:
            return
        record = history.entry(deployment=self.network.deployment_name,
                               commit=self.options.commit, system=m.out_path,
                               goal=self.options.goal.value, result=result.status.value,
                               error=result.error)
        try:
            await history.append(session, record)
        except NixliftError as e:
            self.emit(Notice(m.name, f"could not record the deploy in its history: {e}"))


class _HostRun:
    def __init__(self, deployment: Deployment, machine: Machine) -> None:
        self.d = deployment
        self.m = machine
        self.name = machine.name
        self.clock = _Clock()
        if self.name in deployment._connect_time:
            self.clock.durations.append(("connect", deployment._connect_time[self.name]))
        self.copied = False
        self.activated = False
        #: whether this deploy changed or checked the host (worth a line in its history)
        self.touched = False

    def _result(self, status: Status, error: NixliftError | None = None) -> HostResult:
        return HostResult(
            self.name, status, self.m.out_path,
            error=str(error) if error else None,
            hint=(error.hint or None) if error else None,
            durations=tuple(self.clock.durations),
            copied=self.copied, activated=self.activated,
            detail=getattr(error, "stderr_tail", "") or None,
        )

    async def _step(self, phase: str, detail: str, work: Callable[[], Awaitable[T]],
                    *, slots: asyncio.Semaphore | None = None) -> T:
        """A phase that a stop prevents and an interruption cuts short."""
        rollout = self.d.rollout
        rollout.may_start(phase)
        if slots is not None and slots.locked():
            self.d.emit(Phase(self.name, "wait", f"for a {phase} slot"))
        async with _slot(slots):
            self.d.emit(Phase(self.name, phase, detail))
            with self.clock.phase(phase):
                return await rollout.interruptible(phase, work)

    async def execute(self) -> HostResult:
        d, m = self.d, self.m
        goal = d.options.goal
        not_ready = d._not_ready.get(self.name)
        if not_ready is not None:
            skip = d.options.skip_unreachable and isinstance(not_ready, SshError)
            if isinstance(not_ready, Stopped):
                skip = True
            return self._result(Status.SKIPPED if skip else Status.FAILED, not_ready)
        try:
            session = d._sessions.get(self.name)
            if session is None and d._needs_ssh(m):
                raise Stopped(f"connecting not finished: {d.rollout.reason or 'stopped'}")
            await self._build(session)
            if session is None or not goal.copies:
                return self._result(Status.OK)
            probe = d._probes.get(self.name)
            if probe is None or m.deployment.build_on_target:
                probe = await self._step(
                    "probe", "", lambda: hoststate.probe(session, m.out_path))
            if not probe.has_system:
                await self._step(
                    "copy", m.out_path,
                    lambda: copy(session.target, m.out_path,
                                 use_substitutes=m.deployment.use_substitutes, emit=d.emit),
                    slots=d._host_slots)
                self.copied = self.touched = True
            if not goal.activates:
                return self._result(Status.OK)
            always = d.options.force_activate or m.deployment.always_activate
            if not activation.needs_activation(goal, m.out_path, probe.state, always):
                d.emit(Phase(self.name, "unchanged", "already runs this system"))
                return self._result(Status.UNCHANGED)
            return await self._activate(session, probe.state)
        except Stopped as e:
            return self._result(Status.SKIPPED, e)
        except activation.RolledBackError as e:
            return self._result(Status.ROLLED_BACK, e)
        except NixliftError as e:
            return self._result(Status.FAILED, e)

    async def _build(self, session: SshSession | None) -> None:
        d, m = self.d, self.m
        if m.deployment.build_on_target:
            assert session is not None
            await self._step("build", f"{m.system}, on the host",
                             lambda: build_on_target(session, m, d.emit))
        elif self.name in d._prebuilt:
            d.emit(Phase(self.name, "build", "already built"))
        elif d._shared is not None and d._shared.covers(m):
            shared = d._shared
            await self._step("build", m.system, lambda: shared.wait(m))
        else:
            await self._step("build", m.system,
                             lambda: build(m, d.options.settings, d.options.gc_roots, d.emit),
                             slots=d._build_slots)

    async def _activate(self, session: SshSession, before: HostState) -> HostResult:
        d = self.d
        # --reboot: the new system becomes the boot default and runs after the reboot
        goal = Goal.BOOT if d.options.reboot and d.options.goal.sets_profile else d.options.goal
        if d.options.health_checks and goal is not Goal.DRY_ACTIVATE:
            results = await self._step("check", "pre-deploy checks", lambda: health.run_checks(
                session, self.m, "preDeployChecks", d.emit))
            health.require_passing(results, "pre-deploy check")
        d.rollout.may_start("activation")
        async with _slot(d._host_slots):
            # Checked again after waiting for a slot: a stop meanwhile means never beginning.
            d.rollout.may_start("activation")
            d.emit(Phase(self.name, "activate", goal.value))
            self.activated = self.touched = True
            dep = self.m.deployment
            safety = activation.Safety(
                auto_rollback=dep.auto_rollback and d.options.auto_rollback,
                magic_rollback=dep.magic_rollback and d.options.magic_rollback,
                confirm_timeout=dep.confirm_timeout,
                activation_timeout=dep.activation_timeout,
            )

            async def confirm(directory: str) -> str:
                d.emit(Phase(self.name, "confirm", "logging in over a new connection"))
                return await confirm_over_new_connection(session, directory,
                                                         safety.confirm_timeout)

            async def verify(systemd: bool) -> None:
                if goal in (Goal.SWITCH, Goal.TEST) and d.options.health_checks:
                    health.require_passing(await health.run_checks(
                        session, self.m, "healthChecks", d.emit, systemd=systemd))

            with self.clock.phase("activate"):
                # Not interruptible: once begun, an activation (and its checks and
                # confirmation) runs to its end, so a host is never left half switched.
                outcome = await activation.activate(session, self.m.out_path, goal, safety,
                                                    d.emit, confirm, verify)
            required = outcome is activation.Outcome.REBOOT_REQUIRED
            if (goal is Goal.BOOT and d.options.reboot) or (required and d.options.allow_reboot):
                with self.clock.phase("reboot"):
                    await self._reboot(session, before, safety)
                return self._result(Status.OK)
        if outcome is activation.Outcome.REBOOT_REQUIRED:
            d.emit(Notice(self.name, "activated; switch-to-configuration asks for a reboot"))
            return self._result(Status.REBOOT_REQUIRED)
        return self._result(Status.OK)


    async def _reboot(self, session: SshSession, before: HostState,
                      safety: activation.Safety) -> None:
        """Reboot into the new system and check it; if it does not come back healthy, go back
        to the system that was the boot default before and reboot into that."""
        d, m = self.d, self.m
        control = session.target.control_path
        assert control is not None
        timeout = d.options.reboot_timeout
        previous = before.profile_system
        once = "none"
        if previous is not None and previous != m.out_path and safety.auto_rollback:
            # Boot the new system once; the default stays the old one until the new one is
            # found healthy, so a host that never comes back falls back by itself.
            done = await session.run(hostside.argv("boot_once", m.out_path, previous),
                                     what="setting a one-shot boot entry", elevated=True)
            once = done.stdout.strip() or "none"
        try:
            fresh = await reboot.reboot(session, control, d.emit, timeout=timeout,
                                        expect=m.out_path)
            d._sessions[self.name] = fresh
            if d.options.health_checks:
                health.require_passing(await health.run_checks(
                    fresh, m, "healthChecks", d.emit, systemd=True))
            if once != "none":
                await fresh.run(hostside.argv("boot_default", m.out_path),
                                what="making the new system the boot default", elevated=True)
        except (reboot.RebootError, health.HealthCheckError) as e:
            if once != "none" and isinstance(e, reboot.RebootError):
                e.hint = (f"it was booted once through {once}'s one-shot entry: its next "
                          f"boot starts {previous} again")
            if not safety.auto_rollback or previous is None:
                raise
            current = d._sessions.get(self.name, session)
            try:
                if current is session:  # never came back: nothing to roll back with
                    raise
                d.emit(Phase(self.name, "rollback", f"back to {previous}"))
                await current.run(hostside.argv("set_boot", previous), what="going back",
                                  elevated=True)
                back = await reboot.reboot(current, control, d.emit, timeout=timeout,
                                           expect=previous)
                d._sessions[self.name] = back
            except NixliftError:
                raise e from None
            raise activation.RolledBackError(
                f"{e}; {self.name} rebooted into its previous system", host=self.name,
                hint=e.hint) from None


async def confirm_over_new_connection(session: SshSession, directory: str, timeout: int) -> str:
    """Magic rollback's proof: a NEW SSH login that can still act as root deletes the canary;
    returns the host's decision."""
    target = session.target
    command = remote_command([*target.elevate, *hostside.argv("confirm", directory)])
    done = await proc.run(target.fresh_argv(command), what=f"confirming {target.name}",
                          error=SshError, host=target.name, timeout=timeout + 30, check=False)
    if done.returncode != 0:
        raise SshError(
            f"could not log in to {target.name} over a new connection after activation",
            argv=done.argv, returncode=done.returncode, stderr_tail=done.stderr_tail(),
            host=target.name, hint=diagnose(done.stderr))
    return done.stdout.strip()
