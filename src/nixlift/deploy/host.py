"""One host's deploy, as an explicit sequence: build → probe → copy → pre-deploy checks →
activate (→ health checks, confirmation) → reboot → record.

Everything the sequence needs is passed in: the machine, the run's options, what connecting gave
(`Ready`), the Fleet (slots, failure policy, interruption) and where its build comes from. Each
step either continues or ends the sequence with a typed status; errors become a status in one
place (`_verdict`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nixlift.agent.protocol import Agent, Probe
from nixlift.deploy import activate as activation
from nixlift.deploy import health, history, profiles, reboot
from nixlift.deploy import keys as keys_mod
from nixlift.deploy.build import build_on_target
from nixlift.deploy.buildhost import RemoteBuilds
from nixlift.deploy.copy import Copied, copy
from nixlift.deploy.fanout import Fleet
from nixlift.deploy.lock import HostLock
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.rollout import Stopped
from nixlift.errors import CopyError, NixliftError, SshError
from nixlift.events import Emit, Notice, Output, Phase, Report
from nixlift.model import Goal, HostResult, HostState, Machine, Stage, Status
from nixlift.nix.closure import NarSizes
from nixlift.transport.base import Host

if TYPE_CHECKING:
    from nixlift.deploy.cache import Pusher  # (a deploy with a cache only)

T = TypeVar("T")
log = logging.getLogger("nixlift.deploy")


class Builds(Protocol):
    """Where machines' systems are built (here: nix on this machine, shared by the run)."""

    async def wait(self, machine: Machine) -> None:
        """Return once the machine's system is built (or raise BuildError)."""
        ...

    def built_on(self, machine: Machine) -> RemoteBuilds | None:
        """The build host that builds it; None: this machine."""
        ...


@dataclass(frozen=True)
class Ready:
    """What connecting gave one host before anything was built."""

    host: Host | None = None
    agent: Agent | None = None
    #: the host's state as read under its lock (a deploy that activates takes one)
    probe: Probe | None = None
    #: why it cannot be worked on (unreachable, locked by someone else, stopped)
    problem: NixliftError | None = None
    #: what the host knows of the keys nixlift wrote (read under its lock)
    keys: keys_mod.Known | None = None
    #: the host's lock, held for this deploy (it also takes the record for the history)
    lock: HostLock | None = None
    connect_seconds: float | None = None
    #: over a slow link, the copy started alongside the lock's call (see pipeline.early_copy)
    early_copy: asyncio.Task[int | None] | None = None


class RolledBackError(NixliftError):
    """The host went back to the system it ran before: the deploy of this host failed."""

    kind = "rolled-back"


@dataclass(frozen=True)
class Verdict:
    """How a host's deploy ended."""

    status: Status
    error: str | None = None
    hint: str | None = None
    detail: str | None = None
    kind: str | None = None


def _verdict(error: NixliftError, skip_unreachable: bool) -> Verdict:
    """The one place an error becomes a host's status."""
    if isinstance(error, Stopped) or (isinstance(error, SshError) and skip_unreachable):
        status = Status.SKIPPED
    elif isinstance(error, RolledBackError):
        status = Status.ROLLED_BACK
    else:
        status = Status.FAILED
    return Verdict(
        status,
        str(error),
        error.hint or None,
        getattr(error, "stderr_tail", "") or None,
        error.kind,
    )


class HostSequence:
    def __init__(
        self,
        machine: Machine,
        options: DeployOptions,
        ready: Ready,
        *,
        fleet: Fleet,
        builds: Builds,
        deployment_name: str,
        emit: Emit,
        keys: Sequence[keys_mod.Key] = (),
        pusher: Pusher | None = None,
        sizes: NarSizes | None = None,
    ) -> None:
        self.machine = machine
        self.pusher = pusher
        #: where the copy's NAR sizes come from (shared by the deploy's hosts)
        self.sizes = sizes
        #: with a cache: "fetched", or why the host was copied to instead
        self.cache: str | None = None
        #: the machine's keys and secrets, uploaded with goals that activate (not dry-activate)
        self.keys = tuple(keys) if options.upload_keys else ()
        self.key_contents: dict[str, bytes] = {}
        self.uploaded = keys_mod.Uploaded()
        self.options = options
        self.ready = ready
        self.fleet = fleet
        self.builds = builds
        self.deployment_name = deployment_name
        self.emit = emit
        self.name = machine.name
        self.durations: list[tuple[Stage, float]] = []
        if ready.connect_seconds is not None:
            self.durations.append((Stage.CONNECT, ready.connect_seconds))
        self.copied = False
        self.copy_tries = 0
        self.copied_bytes: int | None = None
        #: with a build host: whether its system came "directly from" it or "through here"
        self.copied_from: str | None = None
        self.activated = False
        self.built = False
        #: whether this deploy changed or checked the host (worth a line in its history)
        self.touched = False
        #: dry-activate: what the host said it would do
        self.dry_activate: tuple[str, ...] | None = None

    # --- the sequence ----------------------------------------------------------------------

    async def run(self) -> HostResult:
        try:
            end = await self._sequence()
        except NixliftError as e:
            end = _verdict(e, self.options.skip_unreachable)
        except Exception as e:
            # a bug of nixlift's: this host fails, the others go on (and keep their activations)
            log.debug("%s: internal error", self.name, exc_info=True)
            end = Verdict(
                Status.FAILED,
                f"internal error in nixlift: {e!r}",
                "please report it, with the output of --debug",
                kind="internal",
            )
        result = HostResult(
            self.name,
            end.status,
            self.machine.out_path if self.built else None,
            error=end.error,
            hint=end.hint,
            durations=tuple(self.durations),
            copied=self.copied,
            activated=self.activated,
            detail=end.detail,
            error_kind=end.kind,
            keys_written=self.uploaded.written,
            keys_unchanged=self.uploaded.unchanged,
            copy_tries=self.copy_tries,
            copied_bytes=self.copied_bytes,
            cache=self.cache,
            copied_from=self.copied_from,
            dry_activate=self.dry_activate,
        )
        await self._record(result)
        return result

    async def _sequence(self) -> Verdict:
        m, goal = self.machine, self.options.goal
        if self.ready.problem is not None:
            raise self.ready.problem
        host, agent = self.ready.host, self.ready.agent
        await self._build(agent)
        if host is None or agent is None or not goal.copies:
            return Verdict(Status.OK)
        read = self.ready.probe
        if read is None or m.deployment.build_on_target:
            read = await self._step(Stage.PROBE, "", lambda: agent.probe(m.out_path))
        probe: Probe = read
        if not probe.has_system:
            if not goal.activates and self.ready.lock is not None:
                # (its record goes ahead, written by the host once the system is there)
                await self.ready.lock.pend(m.out_path, self._history_entry(Status.OK, None))
            if self.pusher is not None and not host.is_local:
                await self._step(Stage.COPY, "through the cache", lambda: self._fetch(agent))
            remote = self.builds.built_on(m)
            if remote is not None:
                self.copied_from = await self._step(
                    Stage.COPY,
                    f"{m.out_path} from {remote.spec.name}",
                    lambda: remote.copy_to(
                        agent,
                        m,
                        use_substitutes=m.deployment.use_substitutes,
                        emit=self.emit,
                        daemon=probe.daemon,
                        connect_timeout=self.options.reach.connect_timeout,
                    ),
                    slot=True,
                )
            elif self.cache != "fetched":
                early = await self._early_copy()
                if isinstance(early, Copied):
                    copied = early
                else:
                    copied = await self._step(
                        Stage.COPY,
                        m.out_path,
                        lambda: copy(
                            agent,
                            [m.out_path],
                            use_substitutes=m.deployment.use_substitutes,
                            emit=self.emit,
                            daemon=probe.daemon,
                            connect_timeout=self.options.reach.connect_timeout,
                            sizes=self.sizes,
                            tried=early,
                        ),
                        slot=True,
                    )
                self.copy_tries, self.copied_bytes = copied.tries, copied.bytes_sent
            self.copied = self.touched = True
            if self.ready.lock is not None:
                # nothing is activated unless under the lock, which a cut copy took with it
                probe = await self.ready.lock.retake() or probe
        if not goal.activates:
            await self._profiles(agent, probe)
            return Verdict(Status.OK)
        always = self.options.force_activate or m.deployment.always_activate
        if not activation.needs_activation(goal, m.out_path, probe.state, always):
            self.emit(Phase(self.name, Stage.UNCHANGED, "already runs this system"))
            verdict = Verdict(Status.UNCHANGED)
        else:
            if goal.sets_profile and not m.deployment.replace_unknown_profiles:
                await self._refuse_unknown_profile(agent, probe.state)
            verdict = await self._activate(host, agent, probe.state)
        if verdict.status in (Status.OK, Status.UNCHANGED, Status.REBOOT_REQUIRED):
            await self._profiles(agent, probe)
        return verdict

    async def _early_copy(self) -> Copied | CopyError | None:
        """How the copy started alongside the lock's call went: its result, or how it failed
        (the usual copy follows, which counts it as its first try); None if there was none."""
        early = self.ready.early_copy
        if early is None:
            return None
        try:
            sent = await self._step(Stage.COPY, self.machine.out_path, lambda: early)
        except CopyError as e:
            return e
        except Stopped:
            raise
        except NixliftError as e:
            log.debug("%s: the early copy did not run (%s); copying as usual", self.name, e)
            return None
        return Copied(1, sent)

    async def _refuse_unknown_profile(self, agent: Agent, state: HostState) -> None:
        """deployment.replaceUnknownProfiles = false (colmena): the profile must be one nixlift
        set, as the host's own history says."""
        current = state.profile_system
        if current is None or current == self.machine.out_path:
            return
        deployed = {r.get("system") for r in await agent.history()}
        if current not in deployed:
            raise NixliftError(
                f"{self.name}'s system profile points at {current}, which nixlift did not "
                "deploy; deployment.replaceUnknownProfiles = false keeps it",
                host=self.name,
                hint="deploy it once with replaceUnknownProfiles = true (the default) if it "
                "may be replaced",
            )

    async def _build(self, agent: Agent | None) -> None:
        m = self.machine
        if m.deployment.build_on_target:
            if agent is None:
                raise Stopped("building on the host not started: no connection")
            await self._step(
                Stage.BUILD,
                f"{m.system}, on the host",
                lambda: build_on_target(agent, m, self.emit),
            )
        elif self._on_the_host_already():
            # nothing of it is built or copied here: the GC roots of what is built here (one
            # nix-store for the fleet, ~0.1 s with ten hosts on two cores) are not waited for
            self.emit(Phase(self.name, Stage.BUILD, "already on the host"))
        else:
            await self._step(Stage.BUILD, m.system, lambda: self.builds.wait(m))
        if m.profiles:
            names = ", ".join(p.name for p in m.profiles)
            options = self.options
            await self._step(
                Stage.BUILD,
                f"profiles {names}",
                lambda: profiles.build(m, options.settings, options.gc_roots, self.emit),
            )
        self.built = True

    def _on_the_host_already(self) -> bool:
        """The lock's probe found the system in the host's store, and this deploy copies it
        there (nothing to copy, then), without --keep-result (whose GC roots are its output)."""
        probe = self.ready.probe
        return (
            probe is not None
            and probe.has_system
            and self.ready.host is not None
            and self.options.goal.copies
            and not self.options.keep_roots
        )

    async def _activate(self, host: Host, agent: Agent, before: HostState) -> Verdict:
        options, m = self.options, self.machine
        # --reboot: the new system becomes the boot default and runs after the reboot
        goal = Goal.BOOT if options.reboot and options.goal.sets_profile else options.goal
        if options.health_checks and goal is not Goal.DRY_ACTIVATE:
            results = await self._step(
                Stage.CHECK,
                "pre-deploy checks",
                lambda: health.run_checks(host, m, "preDeployChecks", self.emit),
            )
            health.require_passing(results, "pre-deploy check")
        uploads = self.keys if goal is not Goal.DRY_ACTIVATE else ()
        if uploads:
            # every key's content first: a missing file or a failing keyCommand stops this
            # host before anything of it changed
            await self._step(Stage.KEYS, "reading", self._read_keys)
            await self._upload(agent, keys_mod.PRE, prune=True)
        rollout = self.fleet.rollout
        rollout.may_start("activation")
        async with self.fleet.slot():
            # Checked again after waiting for a slot: a stop meanwhile means never beginning.
            rollout.may_start("activation")
            self.emit(Phase(self.name, Stage.ACTIVATE, goal.value))
            self.activated = self.touched = True
            dep = m.deployment
            safety = activation.Safety(
                auto_rollback=dep.auto_rollback and options.auto_rollback,
                magic_rollback=dep.magic_rollback and options.magic_rollback,
                confirm_timeout=dep.confirm_timeout,
                activation_timeout=dep.activation_timeout,
            )

            async def verify(systemd: bool) -> tuple[str, str] | None:
                if uploads:
                    try:
                        await self._upload(agent, keys_mod.POST)
                    except NixliftError as e:
                        return f"uploading the post-activation keys failed: {e}", e.hint
                if goal not in (Goal.SWITCH, Goal.TEST) or not options.health_checks:
                    return None
                try:
                    health.require_passing(
                        await health.run_checks(host, m, "healthChecks", self.emit, systemd=systemd)
                    )
                except health.HealthCheckError as e:
                    return str(e), e.hint
                return None

            with self._clock(Stage.ACTIVATE):
                # Not interruptible: once begun, an activation (and its checks and
                # confirmation) runs to its end, so a host is never left half switched.
                result = await activation.activate(
                    agent, m.out_path, goal, safety, before, self.emit, verify, runner=m.activation
                )
            if goal is Goal.DRY_ACTIVATE and result.succeeded:
                self.dry_activate = tuple(result.output.splitlines())
                self.emit(Report(self.name, goal.value, self.dry_activate))
            if not result.succeeded:
                return Verdict(result.status, result.error, result.hint, result.detail, result.kind)
            required = result.status is Status.REBOOT_REQUIRED
            if (goal is Goal.BOOT and options.reboot) or (required and options.allow_reboot):
                with self._clock(Stage.REBOOT):
                    await self._reboot(agent, before, safety)
                return Verdict(Status.OK)
        if result.status is Status.REBOOT_REQUIRED:
            self.emit(Notice(self.name, "activated; switch-to-configuration asks for a reboot"))
        return Verdict(result.status)

    async def _reboot(self, agent: Agent, before: HostState, safety: activation.Safety) -> None:
        """Reboot into the new system and check it; if it does not come back healthy, go back
        to the system that was the boot default before and reboot into that."""
        m, options = self.machine, self.options
        timeout = options.reboot_timeout
        previous = before.profile_system
        once = "none"
        if previous is not None and previous != m.out_path and safety.auto_rollback:
            # Boot the new system once; the default stays the old one until the new one is
            # found healthy, so a host that never comes back falls back by itself.
            once = await agent.boot_once(m.out_path, previous)
        back_once = False
        try:
            await reboot.reboot(agent, self.emit, timeout=timeout, expect=m.out_path)
            back_once = True
            await self._resend_run_keys(agent)
            if options.health_checks:
                health.require_passing(
                    await health.run_checks(agent.host, m, "healthChecks", self.emit, systemd=True)
                )
            if once != "none":
                await agent.boot_default(m.out_path)
        except (reboot.RebootError, health.HealthCheckError) as e:
            if once != "none" and isinstance(e, reboot.RebootError):
                e.hint = (
                    f"it was booted once through {once}'s one-shot entry: its next "
                    f"boot starts {previous} again"
                )
            if not safety.auto_rollback or previous is None or not back_once:
                raise  # never came back: nothing to roll back with
            try:
                self.emit(Phase(self.name, Stage.ROLLBACK, f"back to {previous}"))
                await agent.set_boot(previous)
                await reboot.reboot(agent, self.emit, timeout=timeout, expect=previous)
            except NixliftError:
                raise e from None
            raise RolledBackError(
                f"{e}; {self.name} rebooted into its previous system", host=self.name, hint=e.hint
            ) from None

    async def _record(self, result: HostResult) -> None:
        """Append to the host's own history; a deploy that could not write it still counts."""
        agent, lock = self.ready.agent, self.ready.lock
        if agent is None or not self.touched:
            if lock is not None:
                with contextlib.suppress(NixliftError):
                    await lock.finish(None)
            return
        record = self._history_entry(result.status, result.error)
        try:
            if lock is not None:
                # (a push's record that went ahead, if any, says what this one would)
                await lock.finish(record, as_sent_ahead=result.status is Status.OK)
            else:
                await agent.record(record)
        except NixliftError as e:
            self.emit(Notice(self.name, f"could not record the deploy in its history: {e}"))

    def _history_entry(self, status: Status, error: str | None) -> dict[str, Any]:
        return history.entry(
            deployment=self.deployment_name,
            commit=self.options.commit,
            system=self.machine.out_path,
            goal=self.options.goal.value,
            result=status.value,
            error=error,
        )

    # --- the cache -------------------------------------------------------------------------

    async def _fetch(self, agent: Agent) -> None:
        """The system into the cache (once for all hosts), then from there onto the host; a
        host that cannot fetch it gets the usual copy, and the result says why."""
        assert self.pusher is not None
        cache = self.pusher.cache
        await self.pusher.push(self.name, self.machine.out_path)
        fetched = await agent.substitute(self.machine.out_path, cache.url, cache.public_key)
        for line in fetched.log.splitlines():
            self.emit(Output(self.name, line))
        if fetched.ok:
            self.cache = "fetched"
            return
        why = (fetched.log.strip().splitlines() or ["nix-store failed"])[-1]
        self.cache = f"copied: the host could not fetch from {cache.url} ({why})"
        self.emit(
            Notice(
                self.name,
                f"could not fetch from the cache {cache.url}: {why}; copying from here instead",
            )
        )

    # --- deploy-rs profiles besides the system ---------------------------------------------

    async def _profiles(self, agent: Agent, probe: Probe) -> None:
        """The node's other deploy-rs profiles, once its system reached the goal."""
        m = self.machine
        if not m.profiles:
            return
        await self._step(
            Stage.PROFILES,
            ", ".join(p.name for p in m.profiles),
            lambda: profiles.deploy(agent, m, self.options.goal, self.emit, daemon=probe.daemon),
        )
        self.touched = True

    # --- keys ------------------------------------------------------------------------------

    async def _read_keys(self) -> None:
        for key in self.keys:
            self.key_contents[key.path] = await keys_mod.content(key, self.machine)

    async def _upload(
        self, agent: Agent, phase: str, *, prune: bool = False, known: keys_mod.Known | None = None
    ) -> None:
        """Upload the keys of one phase (with `prune`, also remove those no longer declared),
        then run the actions of the secrets written."""
        chosen = [k for k in self.keys if k.upload_at == phase]
        if not chosen and not prune:
            return
        known = known or self.ready.keys or await keys_mod.known(agent)
        uploaded = await self._step(
            Stage.KEYS,
            f"{len(chosen)} {phase}",
            lambda: keys_mod.upload(
                agent,
                chosen,
                self.key_contents,
                known,
                prune=[k.path for k in self.keys] if prune else None,
            ),
        )
        self.touched = True
        self.uploaded += uploaded
        self.emit(Output(self.name, f"keys: {uploaded.describe()}"))
        for name in uploaded.owner_pending:
            self.emit(
                Notice(
                    self.name,
                    f"key {name} is root's until its user or group exists "
                    "(the activation gives it its owner)",
                )
            )
        await keys_mod.run_actions(agent.host, chosen, uploaded.written)

    async def _resend_run_keys(self, agent: Agent) -> None:
        """A reboot emptied /run: the keys that live there go up again."""
        again = [k for k in self.keys if k.path.startswith("/run/")]
        if not again:
            return
        known = await keys_mod.known(agent)
        uploaded = await self._step(
            Stage.KEYS,
            f"{len(again)} after the reboot",
            lambda: keys_mod.upload(agent, again, self.key_contents, known),
        )
        self.emit(Output(self.name, f"keys: {uploaded.describe()}"))

    # --- steps -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _clock(self, stage: Stage) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.durations.append((stage, round(time.monotonic() - start, 3)))

    async def _step(
        self, stage: Stage, detail: str, work: Callable[[], Awaitable[T]], *, slot: bool = False
    ) -> T:
        """A stage that a stop prevents and an interruption cuts short."""
        rollout = self.fleet.rollout
        rollout.may_start(stage.value)
        if slot and self.fleet.slots_full:
            self.emit(Phase(self.name, Stage.WAIT, f"for a {stage.value} slot"))
        async with contextlib.AsyncExitStack() as stack:
            if slot:
                await stack.enter_async_context(self.fleet.slot())
            self.emit(Phase(self.name, stage, detail))
            with self._clock(stage):
                return await rollout.interruptible(stage.value, work)
        raise AssertionError("unreachable")  # pragma: no cover
