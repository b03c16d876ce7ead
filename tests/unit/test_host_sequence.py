"""One host's deploy, goal by goal and failure by failure, against a fake Host: the exact agent
calls each case makes, in order, and the status and words it ends with."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from fakehost import NEW, OLD, FakeHost, Script

from nixlift.deploy import copy as copy_mod
from nixlift.deploy import pipeline, profiles, reboot
from nixlift.deploy.build import LocalBuilds
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.pipeline import Deployment
from nixlift.deploy.rollout import FailurePolicy
from nixlift.events import Event, Finished, Notice, Phase
from nixlift.model import (
    DeploymentOptions,
    Goal,
    HostResult,
    Machine,
    Network,
    Profile,
    Stage,
    Status,
)
from nixlift.nix.argv import NixSettings


class Built(LocalBuilds):
    """Every system is built already: no nix is run."""

    def __init__(self) -> None:
        super().__init__(
            [], NixSettings(), Path("/tmp"), lambda _: None, keep_roots=False, build_parallel=1
        )

    async def register_prebuilt(self) -> None:
        return None

    def start(self, skip: object = ()) -> None:
        return None

    async def wait(self, machine: Machine) -> None:
        return None

    def in_store(self, machine: Machine) -> bool:
        return True


def machine(**deployment: Any) -> Machine:
    raw = deployment.pop("raw", {})
    options = DeploymentOptions(target_host="h1", raw=raw, **deployment)
    return Machine("h1", "x86_64-linux", "x86_64-linux", options, "/nix/store/x.drv", NEW)


def deploy(
    goal: Goal,
    script: Script,
    m: Machine | None = None,
    builds: LocalBuilds | None = None,
    **options: Any,
) -> tuple[HostResult, FakeHost, list[Event]]:
    host = FakeHost(script=script)
    m = m or machine()
    network = Network("net", "", (), (m,), ("h1",))
    events: list[Event] = []
    deployment = Deployment(
        network,
        DeployOptions(goal=goal, **options),
        events.append,
        make_host=lambda _: host,
        builds=builds or Built(),
    )
    [result] = asyncio.run(deployment.run())
    assert events[-1] == Finished(result)
    return result, host, events


def test_switch_locks_copies_activates_confirms_over_a_new_login_and_records() -> None:
    result, host, events = deploy(Goal.SWITCH, Script())
    assert result.status is Status.OK and result.copied and result.activated
    assert result.system == NEW
    assert host.actions() == ["lock", "copy", "start", "confirm (new login)", "record"]
    assert host.record_ends_lock  # the record and the lock's release in one round trip
    # the activation goes through the held lock; the confirmation needs its own new login
    assert host.held_calls == ["start"]
    [start] = host.agent_calls("start")
    assert start == {
        "dir": start["dir"],
        "system": NEW,
        "goal": "switch",
        "set_profile": True,
        "auto_rollback": True,
        "magic": True,
        "confirm_timeout": 30,
        "activation_timeout": 240,
    }
    assert start["dir"].startswith("/run/nixlift/act-")
    assert host.agent_calls("confirm") == [{"dir": start["dir"]}]
    [record] = host.agent_calls("record")
    assert record["entry"]["goal"] == "switch" and record["entry"]["result"] == "ok"
    stages = [e.phase for e in events if isinstance(e, Phase)]
    assert stages == [
        Stage.CONNECT,
        Stage.BUILD,
        Stage.COPY,
        Stage.CHECK,
        Stage.ACTIVATE,
        Stage.CONFIRM,
    ]


@pytest.mark.parametrize(
    ("goal", "set_profile", "auto", "magic"),
    [
        (Goal.BOOT, True, True, False),
        (Goal.TEST, False, True, True),
        (Goal.DRY_ACTIVATE, False, False, False),
    ],
)
def test_each_goal_asks_the_agent_for_what_it_means(
    goal: Goal, set_profile: bool, auto: bool, magic: bool
) -> None:
    result, host, _ = deploy(goal, Script(has_system=True))
    assert result.status is Status.OK and not result.copied
    [start] = host.agent_calls("start")
    assert (start["goal"], start["set_profile"], start["auto_rollback"], start["magic"]) == (
        goal.value,
        set_profile,
        auto,
        magic,
    )
    confirm = ["confirm (new login)"] if magic else []
    assert host.actions() == ["lock", "start", *confirm, "record"]


def test_push_copies_and_build_touches_no_host() -> None:
    result, host, _ = deploy(Goal.PUSH, Script())
    assert result.status is Status.OK and result.copied and not result.activated
    # no lock without an activation: the same session reads the state once; its record went
    # ahead of the copy, written by the host as the session ended (the system had arrived)
    assert host.actions() == ["lock", "copy", "record"]
    assert host.agent_calls("lock")[0]["exclusive"] is False
    [record] = host.agent_calls("record")
    assert record["ahead"] and (record["entry"]["goal"], record["entry"]["result"]) == (
        "push",
        "ok",
    )
    result, host, _ = deploy(Goal.BUILD, Script())
    assert result.status is Status.OK and result.system == NEW
    assert host.calls == []


def test_a_push_whose_copy_fails_leaves_no_record() -> None:
    """The record sent ahead is written only if the system got there."""
    result, host, _ = deploy(Goal.PUSH, Script(copy_fails=9))
    assert result.status is Status.FAILED
    assert host.agent_calls("record") == []


def test_a_host_on_the_system_is_left_be_without_always_activate() -> None:
    script = Script(current=NEW, profile=NEW, has_system=True)
    result, host, _ = deploy(Goal.SWITCH, script, machine(always_activate=False))
    assert result.status is Status.UNCHANGED and not result.activated
    assert host.actions() == ["lock"]  # nothing changed, nothing to record


class Counted(Built):
    """Built, counting the sequences that wait for a system built here."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[str] = []

    async def wait(self, machine: Machine) -> None:
        self.waited.append(machine.name)


@pytest.mark.parametrize("current", [OLD, NEW])
def test_a_host_that_has_its_system_does_not_wait_for_the_builds_here(current: str) -> None:
    builds = Counted()
    result, _, events = deploy(
        Goal.SWITCH, Script(current=current, profile=current, has_system=True), builds=builds
    )
    assert builds.waited == []
    assert Phase("h1", Stage.BUILD, "already on the host") in events
    assert result.system == NEW and not result.copied
    # with --keep-result the system's GC root here is the point: it is waited for
    builds = Counted()
    deploy(Goal.SWITCH, Script(has_system=True), builds=builds, keep_roots=True)
    assert builds.waited == ["h1"]
    # a host without it waits for it, to copy it
    builds = Counted()
    deploy(Goal.SWITCH, Script(), builds=builds)
    assert builds.waited == ["h1"]


def test_failed_activation_is_rolled_back_by_the_host_and_said_so() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(status=4))
    assert result.status is Status.ROLLED_BACK
    assert host.actions() == ["lock", "copy", "start", "decision", "activation_log", "record"]
    assert result.error is not None
    assert (
        "exited with 4" in result.error
        and f"rolled back to the previous system {OLD}" in result.error
    )
    assert result.detail is not None and "rolling back" in result.detail
    assert host.agent_calls("record")[0]["entry"]["result"] == "rolled-back"


def test_without_auto_rollback_a_failure_stays_a_failure() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(status=4), auto_rollback=False)
    assert result.status is Status.FAILED
    assert result.error == "switch-to-configuration switch on h1 failed with exit status 4"
    assert host.agent_calls("start")[0]["auto_rollback"] is False
    assert "decision" not in host.actions()


def test_a_hanging_activation_is_reported() -> None:
    result, _, _ = deploy(Goal.SWITCH, Script(status=None))
    assert result.status is Status.FAILED
    assert result.error == "switch-to-configuration switch on h1 did not finish within 240 s"


def test_a_rollback_that_left_the_new_system_running_is_not_called_a_rollback() -> None:
    result, _, _ = deploy(Goal.SWITCH, Script(status=4, running_after_rollback=NEW))
    assert result.status is Status.FAILED
    assert result.error is not None and f"rolling h1 back failed too: it runs {NEW}" in result.error
    result, _, _ = deploy(Goal.SWITCH, Script(status=4, rollback_outcome="rollback-failed"))
    assert result.status is Status.FAILED and "back failed too" in str(result.error)
    # a host that ran nothing before runs nothing after: said as it is
    result, _, _ = deploy(
        Goal.SWITCH, Script(current=None, profile=None, status=4, running_after_rollback=None)
    )
    assert result.status is Status.ROLLED_BACK
    assert "it runs no system now (none ran before)" in str(result.error)


def test_a_lockout_rolls_the_host_back() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(locked_out=True))
    assert result.status is Status.ROLLED_BACK
    assert "rolled itself back" in str(result.error)
    assert result.hint is not None and "reachable over SSH" in result.hint
    # the host is told at once, over the connection still open, to roll back
    assert host.actions() == [
        "lock",
        "copy",
        "start",
        "confirm (new login)",
        "abort",
        "activation_log",
        "record",
    ]


def test_without_magic_rollback_nobody_logs_in_anew() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(), magic_rollback=False)
    assert result.status is Status.OK
    assert host.agent_calls("start")[0]["magic"] is False
    assert host.actions() == ["lock", "copy", "start", "record"]


HEALTH = {
    "healthChecks": {
        "cmd": [
            {"cmd": ["test", "-e", "/x"], "description": "x exists", "period": 1, "timeout": 1}
        ],
        "http": [],
    }
}


def test_a_failing_health_check_aborts_the_waiting_watchdog() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(check_status=1), machine(raw=HEALTH))
    assert result.status is Status.ROLLED_BACK
    assert "health check 'x exists' on h1 failed" in str(result.error)
    assert host.actions() == ["lock", "copy", "start", "run", "abort", "activation_log", "record"]
    assert host.agent_calls("abort")[0]["reason"].startswith("health check failed:")


def test_a_failing_health_check_without_magic_rollback_undoes_the_activation() -> None:
    result, host, _ = deploy(
        Goal.SWITCH, Script(check_status=1), machine(raw=HEALTH), magic_rollback=False
    )
    assert result.status is Status.ROLLED_BACK
    assert "undo" in host.actions() and "abort" not in host.actions()


def test_pre_deploy_checks_keep_a_host_from_activating() -> None:
    raw = {"preDeployChecks": HEALTH["healthChecks"]}
    result, host, _ = deploy(Goal.SWITCH, Script(check_status=1), machine(raw=raw))
    assert result.status is Status.FAILED and "pre-deploy check" in str(result.error)
    assert "start" not in host.actions()


def test_something_that_is_not_a_nixos_system_is_refused() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(refused=True))
    assert result.status is Status.FAILED and "is not a NixOS system" in str(result.error)
    assert host.actions() == ["lock", "copy", "start", "record"]


def test_reboot_boots_once_then_makes_the_new_system_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reboot, "SETTLE", 0)
    monkeypatch.setattr(reboot, "RETRY", 0)
    result, host, _ = deploy(Goal.SWITCH, Script(), reboot=True)
    assert result.status is Status.OK, result.error
    assert host.agent_calls("start")[0]["goal"] == "boot"
    assert host.agent_calls("boot_once") == [{"new": NEW, "old": OLD}]
    # (the run after the reboot asks systemd whether the host is healthy)
    assert host.actions() == [
        "lock",
        "copy",
        "start",
        "boot_once",
        "probe",
        "reboot",
        "probe",
        "run",
        "boot_default",
        "record",
    ]


def test_a_host_that_never_comes_back_is_said_to_fall_back_on_its_next_boot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reboot, "SETTLE", 0)
    monkeypatch.setattr(reboot, "RETRY", 0.01)
    result, host, _ = deploy(Goal.SWITCH, Script(never_back=True), reboot=True, reboot_timeout=1)
    assert result.status is Status.FAILED and "did not come back" in str(result.error)
    assert result.hint is not None and "one-shot entry" in result.hint and OLD in result.hint
    assert "boot_default" not in host.actions() and "set_boot" not in host.actions()


def test_an_unreachable_host_fails_or_is_skipped() -> None:
    host = FakeHost(script=Script(), up=False)
    network = Network("net", "", (), (machine(),), ("h1",))
    for skip, status in ((False, Status.FAILED), (True, Status.SKIPPED)):
        deployment = Deployment(
            network,
            DeployOptions(skip_unreachable=skip),
            lambda _: None,
            make_host=lambda _: host,
            builds=Built(),
        )
        [result] = asyncio.run(deployment.run())
        assert result.status is status and result.system is None
        assert "cannot reach h1" in str(result.error)


def test_a_profile_nixlift_did_not_set_is_kept_when_asked_to() -> None:
    keep = machine(replace_unknown_profiles=False)
    result, host, _ = deploy(Goal.SWITCH, Script(), keep)
    assert result.status is Status.FAILED and "which nixlift did not deploy" in str(result.error)
    assert "start" not in host.actions()
    # a profile nixlift set itself (its history says so) is replaced as usual
    result, host, _ = deploy(Goal.SWITCH, Script(history=[{"system": OLD}]), keep)
    assert result.status is Status.OK and "history" in host.actions()
    # and by default nobody asks
    result, host, _ = deploy(Goal.SWITCH, Script())
    assert result.status is Status.OK and "history" not in host.actions()


def test_a_host_that_already_runs_the_system_is_not_confirmed_over_a_new_login() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(current=NEW, profile=NEW, has_system=True))
    assert result.status is Status.OK and result.activated
    assert host.agent_calls("start")[0]["magic"] is False
    assert host.actions() == ["lock", "start", "record"]


PROFILE = "/nix/store/" + "p" * 32 + "-activatable-home"


def deploy_rs(**deployment: Any) -> Machine:
    """A deploy-rs node: its system profile, and a home-manager-like profile for `alice`."""
    base = machine(**deployment)
    profile = Profile("home", PROFILE, "/nix/store/p.drv", "alice", auto_rollback=True)
    return dataclasses.replace(base, profiles=(profile,), activation="deploy-rs")


@pytest.fixture(autouse=True)
def _profiles_built(monkeypatch: pytest.MonkeyPatch) -> None:
    async def built(*_: object) -> None:
        """The profiles are built already: no nix is run."""

    monkeypatch.setattr(profiles, "build", built)


def test_a_deploy_rs_node_switches_with_its_own_activation_then_its_other_profiles() -> None:
    result, host, events = deploy(Goal.SWITCH, Script(), deploy_rs())
    assert result.status is Status.OK, result.error
    assert host.agent_calls("start")[0]["runner"] == "deploy-rs"
    assert host.actions() == [
        "lock",
        "copy",
        "start",
        "confirm (new login)",
        "copy",
        "profile",
        "record",
    ]
    assert [c[1] for c in host.calls if c[0] == "copy"] == [[NEW], [PROFILE]]
    [call] = host.agent_calls("profile")
    assert call == {
        "profile_name": "home",
        "path": PROFILE,
        "user": "alice",
        "profile_path": "",
        "goal": "switch",
        "auto_rollback": True,
        "activation_timeout": 240,
    }
    assert Stage.PROFILES in [e.phase for e in events if isinstance(e, Phase)]


def test_a_failing_profile_fails_the_host_and_says_the_system_stays() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(profile_status={"home": 3}), deploy_rs())
    assert result.status is Status.FAILED and result.activated
    assert result.error is not None
    assert "the profile home (alice" in result.error and "exited with 3" in result.error
    assert "rolled back to its previous generation" in result.error
    assert "the system stays activated" in result.error
    assert host.agent_calls("record")[0]["entry"]["result"] == "failed"


def test_profiles_are_copied_with_push_and_kept_up_on_an_unchanged_host() -> None:
    result, host, _ = deploy(Goal.PUSH, Script(), deploy_rs())
    assert result.status is Status.OK
    assert host.actions() == ["lock", "copy", "copy", "record"]
    script = Script(current=NEW, profile=NEW, has_system=True)
    result, host, _ = deploy(Goal.SWITCH, script, deploy_rs(always_activate=False))
    assert result.status is Status.UNCHANGED
    assert host.actions() == ["lock", "copy", "profile", "record"]


def test_a_system_profile_without_deploy_rs_activate_is_refused() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(deploy_rs_activate=False), deploy_rs())
    assert result.status is Status.FAILED and "has no deploy-rs-activate" in str(result.error)
    assert "profile" not in host.actions()


def test_a_failed_system_activation_leaves_the_other_profiles_alone() -> None:
    result, host, _ = deploy(Goal.SWITCH, Script(status=4), deploy_rs())
    assert result.status is Status.ROLLED_BACK
    assert "profile" not in host.actions()


def test_over_a_slow_link_the_copy_starts_alongside_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "FAR", 0.0)  # every link is slow
    result, host, _ = deploy(Goal.SWITCH, Script())
    assert result.status is Status.OK and result.copied and result.copy_tries == 1
    # the copy began before the lock's answer was known, and was not made twice
    assert host.actions() == ["copy", "lock", "start", "confirm (new login)", "record"]
    # the host has the system: the copy is stopped, nothing is copied
    result, host, _ = deploy(Goal.SWITCH, Script(has_system=True))
    assert result.status is Status.OK and not result.copied
    assert "copy" not in host.actions()[1:]
    # a failed early copy is made again in its usual place (with its retries), and counted
    failing = Script(copy_fails=1)
    result, host, events = deploy(Goal.SWITCH, failing)
    assert result.status is Status.OK and result.copied and result.copy_tries == 2
    assert host.actions() == ["copy", "lock", "copy", "start", "confirm (new login)", "record"]
    assert not [e for e in events if isinstance(e, Notice) and "cut" in e.message]


def test_an_early_copy_whose_connection_was_cut_is_said_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "FAR", 0.0)
    monkeypatch.setattr(copy_mod, "BACKOFF", (0.0, 0.0))
    result, host, events = deploy(Goal.SWITCH, Script(copy_fails=1, copy_cut=True))
    assert result.status is Status.OK and result.copied and result.copy_tries == 2
    said = [e.message for e in events if isinstance(e, Notice)]
    assert "the copy's connection was cut; trying again over a new connection (2 of 3)" in said
    # the host is reached anew for the next try, as for any cut copy
    assert [c for c in host.calls if c == ("open",)] == [("open",), ("open",)]


@pytest.mark.parametrize("slow_link", [False, True])
def test_the_result_says_the_bytes_its_copy_sent(
    slow_link: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slow_link:
        monkeypatch.setattr(pipeline, "FAR", 0.0)  # the copy starts alongside the lock
    result, _, _ = deploy(Goal.SWITCH, Script(copy_bytes=12_897_485))
    assert (result.copied, result.copy_tries, result.copied_bytes) == (True, 1, 12_897_485)
    result, _, _ = deploy(Goal.SWITCH, Script(has_system=True, copy_bytes=1))
    assert (result.copied, result.copied_bytes) == (False, None)


def test_a_host_goes_on_once_connected_unless_a_failure_would_stop_the_rollout() -> None:
    def finished(**options: Any) -> dict[str, float]:
        """When each host's result came, in seconds since the deploy began."""
        slow = FakeHost("h1", Script(connect_seconds=0.3, current=NEW, has_system=True))
        fast = FakeHost("h2", Script(current=NEW, has_system=True))
        hosts = {"h1": slow, "h2": fast}
        ms = tuple(dataclasses.replace(machine(), name=n) for n in hosts)
        begun = time.monotonic()
        when: dict[str, float] = {}

        def emit(event: Event) -> None:
            if isinstance(event, Finished):
                when[event.result.name] = time.monotonic() - begun

        deployment = Deployment(
            Network("net", "", (), ms, tuple(hosts)),
            DeployOptions(goal=Goal.SWITCH, **options),
            emit,
            make_host=lambda m: hosts[m.name],
            builds=Built(),
        )
        asyncio.run(deployment.run())
        return when

    # h2 is done while h1 is still connecting
    alone = finished()
    assert alone["h2"] < 0.2 < 0.3 <= alone["h1"]
    # with --fail-fast, every host is connected and locked before any host's work begins
    assert finished(policy=FailurePolicy(fail_fast=True))["h2"] >= 0.3


def test_a_push_whose_call_has_ended_records_as_usual() -> None:
    """A record that cannot go ahead (the lock's call has ended) is no failure: the push goes
    on, and its record is sent at its end on a call of its own, answered."""
    from nixlift.agent.protocol import Agent, Held
    from nixlift.deploy.lock import HostLock

    async def main() -> FakeHost:
        host = FakeHost(script=Script())
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ended.set_result(None)
        lock = HostLock(Agent(host), {}, 0, NEW, exclusive=False)
        lock._held = Held("h1", ended, {}, asyncio.Queue(), asyncio.Queue())  # type: ignore[arg-type]
        await lock.pend(NEW, {"goal": "push", "result": "ok"})
        await lock.finish({"goal": "push", "result": "ok"}, as_sent_ahead=True)
        return host

    host = asyncio.run(main())
    assert host.actions() == ["record"]
    assert host.agent_calls("record") == [{"entry": {"goal": "push", "result": "ok"}}]
