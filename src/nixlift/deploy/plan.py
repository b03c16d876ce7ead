"""`nixlift plan`: what a deploy would change on each host, found without changing any.

Per host: connect, ask the agent what it runs (`survey`), build here what is not built (or,
with --no-build, ask nix's dry run what building would take), then, for a host that would run
another system, read its running closure and which paths of the new one it lacks (`closure`),
and compare the two closures by package as `nix store diff-closures` does.

No lock is taken: the agent's survey and closure calls only read, so a plan neither waits for
a deploy under way nor makes one wait, and leaves no lock file behind; a host whose lock is
held says so in its plan (what it runs may change when that deploy ends). Nothing is written on
a host — no profile, no /run/current-system, no history, no key (not even the keys' salt), no
store path — except the agent itself in /run/nixlift, as every command installs it. Only
`--dry-activate` copies the new system into the host's store, since the host's own
`switch-to-configuration dry-activate` must run from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from nixlift.agent.answers import HostClosure, Survey
from nixlift.agent.protocol import Agent
from nixlift.deploy import activate as activation
from nixlift.deploy import keys as keys_mod
from nixlift.deploy.build import LocalBuilds, _in_store
from nixlift.deploy.copy import copy
from nixlift.deploy.fanout import Fleet, HostMaker
from nixlift.deploy.lock import describe_holder
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.rollout import Stopped
from nixlift.errors import CommandError, NixliftError, SshError
from nixlift.events import Emit, Phase
from nixlift.events import Plan as PlanEvent
from nixlift.model import Goal, HostState, Machine, Network, Stage
from nixlift.nix import closure as closures
from nixlift.nix.closure import DryRun
from nixlift.plans import FleetPlan, HostPlan, KeyPlan, PlanState


@dataclass(frozen=True)
class PlanOptions:
    deploy: DeployOptions = field(default_factory=DeployOptions)
    #: --no-build: say what building would take instead of building
    no_build: bool = False
    #: --dry-activate: copy the new system and run the host's own dry-activate
    dry_activate: bool = False
    #: with no_build: ask nix's dry run what building would take (`info` does not need it)
    ask_nix: bool = True
    #: hosts read at once (0: all; a plan only reads, as a deploy connects to all at once)
    parallel: int = 0


#: reads the closures of built store paths here, with NAR sizes
ReadClosures = Callable[[Sequence[str]], Awaitable[Mapping[str, Mapping[str, int]]]]


def activation_rule(goal: Goal, system: str, state: HostState, always: bool) -> tuple[bool, str]:
    """Whether a deploy would activate the host, and why (NixOps' alwaysActivate rule)."""
    runs = activation.needs_activation(goal, system, state, always)
    if not goal.activates:
        return False, f"the goal {goal.value} does not activate"
    if state.current_system is None:
        return runs, "nothing runs yet"
    if state.current_system != system:
        return runs, "it runs another system"
    if runs:
        return True, "it runs this system already; alwaysActivate activates it again"
    return False, "it runs this system already (alwaysActivate = false)"


def key_plan(
    keys: Sequence[keys_mod.Key], contents: Mapping[str, bytes], known: Mapping[str, object] | None
) -> KeyPlan:
    """Which keys an upload would write, leave or remove, by the host's digests (names only)."""
    salt = (known or {}).get("salt")
    present_raw = (known or {}).get("present")
    present = (
        {str(k): str(v) for k, v in present_raw.items()} if isinstance(present_raw, dict) else {}
    )
    write: list[str] = []
    unchanged: list[str] = []
    for key in keys:
        if isinstance(salt, str) and salt:
            sign = keys_mod.digest(bytes.fromhex(salt), key, contents[key.path])
            same = present.get(key.path) == sign
        else:
            same = False  # the host was never given a key: every one is new there
        (unchanged if same else write).append(key.name)
    declared = {k.path for k in keys}
    return KeyPlan(tuple(write), tuple(unchanged), tuple(p for p in present if p not in declared))


class Planner:
    """One plan over a network's selected machines."""

    def __init__(
        self,
        network: Network,
        options: PlanOptions,
        emit: Emit,
        *,
        keys: Mapping[str, Sequence[keys_mod.Key]] | None = None,
        make_host: HostMaker | None = None,
        builds: LocalBuilds | None = None,
        read_closures: ReadClosures | None = None,
    ) -> None:
        self.network = network
        #: the new systems' closures, read here (tests give their own)
        self.read_closures = read_closures or (
            lambda paths: closures.local_closures(paths, options.deploy.settings)
        )
        self.options = options
        self.emit = emit
        self.keys = keys or {}
        d = options.deploy
        self.fleet = Fleet(
            network.machines, d.reach, parallel=options.parallel, emit=emit, make_host=make_host
        )
        #: machines whose system is built here (the others are built on their host or a build
        #: host: a plan does not build there)
        self.here = [m for m in network.machines if self._built_here(m)]
        self.builds = builds or LocalBuilds(
            self.here,
            d.settings,
            d.gc_roots,
            emit,
            keep_roots=False,
            build_parallel=d.build_parallel,
        )

    def _built_here(self, m: Machine) -> bool:
        return not m.deployment.build_on_target and (
            m.deployment.build_host is None and self.options.deploy.build_host is None
        )

    def interrupt(self) -> None:
        self.fleet.interrupt()
        self.builds.cancel()

    @property
    def interrupted(self) -> bool:
        return self.fleet.rollout.interrupted

    async def run(self) -> FleetPlan:
        machines = self.network.machines
        goal = self.options.deploy.goal
        self.emit(PlanEvent(tuple(m.name for m in machines), goal))
        async with self.fleet:
            try:
                surveys, (built, dry) = await asyncio.gather(self._survey_all(), self._build_all())
                new = await self._new_closures([m for m in machines if built.get(m.name) is True])
                plans = await asyncio.gather(
                    *(self._host(m, surveys[m.name], built.get(m.name), new) for m in machines)
                )
            finally:
                await self.builds.close()
        return FleetPlan(
            tuple(plans),
            goal,
            would_build=dry.build,
            would_fetch=dry.fetch,
            unknown=dry.unknown,
        )

    # --- reading the hosts -----------------------------------------------------------------

    async def _survey_all(self) -> dict[str, Survey | NixliftError]:
        async def one(m: Machine) -> Survey | NixliftError:
            try:
                async with self.fleet.slot():
                    host = await self.fleet.connect(m)
                    agent = Agent(host)
                    want = bool(self.keys.get(m.name)) and self.options.deploy.upload_keys
                    return await self.fleet.rollout.interruptible(
                        m.name, lambda: agent.survey(m.out_path, want_keys=want)
                    )
            except NixliftError as e:
                return e

        found = await asyncio.gather(*(one(m) for m in self.network.machines))
        return {m.name: s for m, s in zip(self.network.machines, found, strict=True)}

    # --- building, or what building would take -----------------------------------------------

    async def _build_all(self) -> tuple[dict[str, bool | NixliftError], DryRun]:
        """Per machine built here: True once its system is in the store (built now or before),
        False when --no-build leaves it unbuilt, or the build's error."""
        if self.options.no_build:
            unbuilt = [m for m in self.here if not _in_store(m.out_path)]
            if not self.options.ask_nix:
                unbuilt = []
            dry = await closures.dry_run(
                [m.drv_path for m in unbuilt], self.options.deploy.settings
            )
            return {m.name: _in_store(m.out_path) for m in self.here}, dry
        await self.builds.register_prebuilt()
        self.builds.start()

        async def one(m: Machine) -> bool | NixliftError:
            try:
                await self.fleet.rollout.interruptible(m.name, lambda: self.builds.wait(m))
            except NixliftError as e:
                return e
            return True

        done = await asyncio.gather(*(one(m) for m in self.here))
        return {m.name: d for m, d in zip(self.here, done, strict=True)}, DryRun()

    async def _new_closures(self, machines: Sequence[Machine]) -> Mapping[str, Mapping[str, int]]:
        if not machines:
            return {}
        return await self.read_closures([m.out_path for m in machines])

    # --- one host ------------------------------------------------------------------------------

    async def _host(
        self,
        m: Machine,
        survey: Survey | NixliftError,
        built: bool | NixliftError | None,
        new: Mapping[str, Mapping[str, int]],
    ) -> HostPlan:
        try:
            async with self.fleet.slot():
                return await self._plan(m, survey, built, new)
        except NixliftError as e:
            unreachable = isinstance(e, SshError)
            return HostPlan(
                m.name,
                PlanState.UNREACHABLE if unreachable else PlanState.FAILED,
                system=None if unreachable or isinstance(e, Stopped) else m.out_path,
                error=str(e),
                hint=e.hint or None,
                error_kind=e.kind,
                detail=e.stderr_tail if isinstance(e, CommandError) else None,
            )

    async def _plan(
        self,
        m: Machine,
        survey: Survey | NixliftError,
        built: bool | NixliftError | None,
        new: Mapping[str, Mapping[str, int]],
    ) -> HostPlan:
        options = self.options.deploy
        if isinstance(survey, NixliftError):
            raise survey
        if isinstance(built, NixliftError):
            raise built
        state = survey.probe.state
        goal = options.goal
        unchanged = state.current_system == m.out_path and (
            not goal.sets_profile or state.profile_system == m.out_path
        )
        always = options.force_activate or m.deployment.always_activate
        activates, why = activation_rule(goal, m.out_path, state, always)
        notes: list[str] = []
        if survey.holder is not None:
            notes.append(
                f"{describe_holder(survey.holder)} holds its lock: what it runs may change "
                "when that deploy ends"
            )
        if built is None:
            notes.append(
                "its system is built on "
                + ("the host" if m.deployment.build_on_target else "the build host")
                + ": a plan does not build there, so its package changes are not known"
            )
        plan = HostPlan(
            m.name,
            PlanState.UNCHANGED if unchanged else PlanState.CHANGES,
            current=state.current_system,
            profile=state.profile_system,
            system=m.out_path,
            built=built is True,
            activates=activates,
            activation_reason=why,
            notes=tuple(notes),
        )
        after = new.get(m.out_path)
        if after is not None:
            size = sum(after.values())
            plan = replace(plan, closure_after=size)
            if unchanged:
                nothing = 0 if m.deployment.use_substitutes else None
                plan = replace(
                    plan,
                    closure_before=size,
                    copy_paths=0,
                    copy_bytes=0,
                    fetch_paths=nothing,
                    fetch_bytes=nothing,
                )
            else:
                plan = await self._compare(m, plan, after)
        declared = self.keys.get(m.name, ())
        if declared and options.upload_keys and goal.activates and goal is not Goal.DRY_ACTIVATE:
            contents = {k.path: await keys_mod.content(k, m) for k in declared}
            plan = replace(plan, keys=key_plan(declared, contents, survey.keys))
        if self.options.dry_activate and after is not None:
            plan = replace(plan, dry_activate=await self._dry_activate(m, state, plan))
        return plan

    async def _compare(self, m: Machine, plan: HostPlan, after: Mapping[str, int]) -> HostPlan:
        """The package changes and what the copy would send, from the host's own closure."""
        agent = Agent(await self.fleet.connect(m))
        substitutes = m.deployment.use_substitutes
        self.emit(Phase(m.name, Stage.PROBE, "reading its closure"))
        there: HostClosure = await self.fleet.rollout.interruptible(
            m.name, lambda: agent.closure(sorted(after), substitutes=substitutes)
        )
        missing = [p for p in there.missing if p in after]
        fetchable = (
            [p for p in closures.parse_dry_run(there.dry_run).fetch if p in after]
            if substitutes
            else []
        )
        return replace(
            plan,
            changes=closures.diff(there.closure, after),
            copy_paths=len(missing),
            copy_bytes=sum(after[p] for p in missing),
            fetch_paths=len(fetchable) if substitutes else None,
            fetch_bytes=sum(after[p] for p in fetchable) if substitutes else None,
            closure_before=sum(there.closure.values()) if there.current else None,
        )

    async def _dry_activate(self, m: Machine, state: HostState, plan: HostPlan) -> tuple[str, ...]:
        """The host's own dry-activate, from the new system copied into its store."""
        agent = Agent(await self.fleet.connect(m))
        if plan.copy_paths:
            self.emit(Phase(m.name, Stage.COPY, m.out_path))
            await copy(
                agent,
                [m.out_path],
                use_substitutes=m.deployment.use_substitutes,
                emit=self.emit,
                connect_timeout=self.options.deploy.reach.connect_timeout,
            )
        self.emit(Phase(m.name, Stage.ACTIVATE, Goal.DRY_ACTIVATE.value))

        async def nothing(_systemd: bool) -> None:
            return None

        result = await activation.activate(
            agent,
            m.out_path,
            Goal.DRY_ACTIVATE,
            activation.Safety(auto_rollback=False, magic_rollback=False),
            state,
            self.emit,
            nothing,
            runner=m.activation,
        )
        if not result.succeeded:
            raise NixliftError(
                f"dry-activate on {m.name} failed: {result.error}",
                host=m.name,
                hint=result.hint or "",
            )
        return tuple(result.output.splitlines())
