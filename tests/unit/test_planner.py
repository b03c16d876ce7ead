"""`nixlift plan` against a fake host: the agent calls a plan makes (only reading ones), what it
finds, and how it is worded; and dry-activate's answer shown without -v."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema
from fakehost import NEW, OLD, FakeHost, Script
from test_host_sequence import Built, deploy, machine
from test_live import Clock, play, scrollback, terminal

from nixlift.cli.evaluated import Evaluated
from nixlift.cli.options import Invocation, from_namespace
from nixlift.cli.parser import build_parser
from nixlift.cli.plan_cmd import plan_json
from nixlift.deploy import keys as keys_mod
from nixlift.deploy.options import DeployOptions
from nixlift.deploy.plan import Planner, PlanOptions, key_plan
from nixlift.events import Event, Finished, Report
from nixlift.events import Plan as PlanEvent
from nixlift.model import Goal, HostResult, Network, Status
from nixlift.nix.argv import NixSettings
from nixlift.plans import ChangeKind, FleetPlan, HostPlan, PackageChange, PlanState
from nixlift.ui.live import LiveRenderer
from nixlift.ui.plan import render_plan
from nixlift.ui.planwords import change_text, plan_summary


def s(name: str) -> str:
    return f"/nix/store/{'s' * 32}-{name}"


OLD_CLOSURE = {OLD: 1000, s("hello-2.12.1"): 5000, s("curl-8.6.0"): 40000, s("glibc-2.38"): 9000}
NEW_CLOSURE = {NEW: 1000, s("jq-1.7.1"): 20000, s("curl-8.7.1"): 41000, s("glibc-2.38"): 9000}


def plan(
    script: Script,
    *,
    up: bool = True,
    closure: Mapping[str, int] = NEW_CLOSURE,
    dry_activate: bool = False,
    **deployment: Any,
) -> tuple[HostPlan, FakeHost, list[Event]]:
    host = FakeHost(script=script, up=up)
    m = machine(**deployment)
    events: list[Event] = []

    async def read(paths: Sequence[str]) -> dict[str, Mapping[str, int]]:
        assert list(paths) == [NEW]
        return {NEW: closure}

    planner = Planner(
        Network("net", "", (), (m,), ("h1",)),
        PlanOptions(DeployOptions(goal=Goal.SWITCH), dry_activate=dry_activate),
        events.append,
        make_host=lambda _: host,
        builds=Built(),
        read_closures=read,
    )
    result = asyncio.run(planner.run())
    [hp] = result.hosts
    return hp, host, events


def test_a_changing_host_is_only_read_its_closure_compared_and_the_copy_sized() -> None:
    hp, host, _ = plan(Script(closure=dict(OLD_CLOSURE)))
    # no lock, no copy, no activation, no record: two calls that only read
    assert host.actions() == ["survey", "closure"]
    assert hp.state is PlanState.CHANGES
    assert (hp.current, hp.system) == (OLD, NEW)
    assert [(c.name, c.kind, c.removed, c.added) for c in hp.changes] == [
        ("curl", ChangeKind.CHANGED, ("8.6.0",), ("8.7.1",)),
        ("hello", ChangeKind.REMOVED, ("2.12.1",), ()),
        ("jq", ChangeKind.ADDED, (), ("1.7.1",)),
    ]
    # what the host lacks: the new system, jq and the new curl (glibc it has)
    assert (hp.copy_paths, hp.copy_bytes) == (3, 1000 + 20000 + 41000)
    assert (hp.closure_before, hp.closure_after) == (55000, 71000)
    assert hp.activates and hp.activation_reason == "it runs another system"
    # the host was sent the new closure's paths to check, one a line
    assert sorted(host.payload.decode().split()) == sorted(NEW_CLOSURE)  # type: ignore[union-attr]
    assert plan_summary(hp) == "+1 \N{MINUS SIGN}1 ~1 packages, 60.5 KiB to copy"


def test_paths_the_host_has_elsewhere_in_its_store_are_not_copied() -> None:
    hp, _, _ = plan(Script(closure=dict(OLD_CLOSURE), store={s("jq-1.7.1")}))
    assert (hp.copy_paths, hp.copy_bytes) == (2, 42000)


def test_an_unchanged_host_costs_one_call() -> None:
    hp, host, _ = plan(Script(current=NEW, profile=NEW, has_system=True))
    assert host.actions() == ["survey"]
    assert hp.state is PlanState.UNCHANGED and hp.changes == ()
    assert (hp.copy_paths, hp.copy_bytes) == (0, 0)
    assert hp.closure_before == hp.closure_after == 71000
    assert hp.activates
    assert "alwaysActivate" in hp.activation_reason


def test_without_always_activate_an_unchanged_host_is_not_activated() -> None:
    hp, _, _ = plan(Script(current=NEW, profile=NEW, has_system=True), always_activate=False)
    assert not hp.activates
    assert hp.activation_reason == "it runs this system already (alwaysActivate = false)"


def test_a_profile_elsewhere_means_a_switch_changes_the_host() -> None:
    hp, _, _ = plan(Script(current=NEW, profile=OLD, has_system=True, closure=NEW_CLOSURE))
    assert hp.state is PlanState.CHANGES and hp.changes == ()
    assert hp.copy_paths == 0


def test_a_fresh_host_gets_everything_added() -> None:
    hp, _, _ = plan(Script(current=None, profile=None))
    assert hp.state is PlanState.CHANGES and hp.closure_before is None
    assert {c.kind for c in hp.changes} == {ChangeKind.ADDED}
    assert hp.activation_reason == "nothing runs yet"


def test_an_unreachable_host_says_so() -> None:
    hp, host, _ = plan(Script(), up=False)
    assert hp.state is PlanState.UNREACHABLE
    assert hp.error == "cannot reach h1" and hp.hint == "is it up?"
    assert host.actions() == []


def test_a_deploy_under_way_is_noted() -> None:
    holder = {
        "user": "ann",
        "from": "laptop",
        "pid": 7,
        "deployment": "net",
        "since": "2024-05-01 10:00:00 +0000",
    }
    hp, _, _ = plan(Script(current=NEW, profile=NEW, holder=holder))
    # worded as a deploy that finds the lock held words it
    assert hp.notes == (
        "ann@laptop (pid 7, deploying net) since 2024-05-01 10:00:00 +0000 holds its lock: "
        "what it runs may change when that deploy ends",
    )


def test_plan_dry_activate_copies_then_asks_the_host() -> None:
    hp, host, _ = plan(Script(closure=dict(OLD_CLOSURE)), dry_activate=True)
    assert host.actions() == ["survey", "closure", "copy", "start"]
    [start] = host.agent_calls("start")
    assert start["goal"] == "dry-activate" and not start["set_profile"] and not start["magic"]
    assert hp.dry_activate == ("activating...",)


def test_deploy_dry_activate_reports_the_hosts_lines_and_keeps_them_in_the_result() -> None:
    result, _, events = deploy(Goal.DRY_ACTIVATE, Script(has_system=True))
    assert result.status is Status.OK
    assert result.dry_activate == ("activating...",)
    assert Report("h1", "dry-activate", ("activating...",)) in events


KEY = keys_mod.Key(
    "db", "keys", "/run/keys/db", "root", "root", "0600", "pre-activation", "keys", "text"
)
OTHER = keys_mod.Key(
    "tls", "keys", "/run/keys/tls", "root", "root", "0600", "pre-activation", "keys", "text"
)


def test_keys_a_host_never_had_are_all_uploaded() -> None:
    contents = {KEY.path: b"a", OTHER.path: b"b"}
    assert key_plan([KEY, OTHER], contents, {"salt": None, "present": {}}).write == ("db", "tls")


def test_keys_whose_digest_matches_stay_and_undeclared_ones_go() -> None:
    salt = b"\x01" * 32
    present = {KEY.path: keys_mod.digest(salt, KEY, b"a"), "/run/keys/old": "x"}
    planned = key_plan(
        [KEY, OTHER], {KEY.path: b"a", OTHER.path: b"b"}, {"salt": salt.hex(), "present": present}
    )
    assert (planned.write, planned.unchanged, planned.remove) == (
        ("tls",),
        ("db",),
        ("/run/keys/old",),
    )


def test_changes_are_worded_with_their_versions() -> None:
    assert change_text(PackageChange("jq", ChangeKind.ADDED, (), ("1.7.1",), 1)) == "jq 1.7.1"
    assert change_text(PackageChange("x", ChangeKind.REMOVED, ("",), (), -1)) == "x ε"
    changed = PackageChange("curl", ChangeKind.CHANGED, ("8.6.0",), ("8.7.1",), 1)
    assert change_text(changed) == "curl 8.6.0 → 8.7.1"
    assert change_text(PackageChange("grow", ChangeKind.SIZE, (), (), -9000)) == "grow -8.8 KiB"


def test_the_plan_is_plain_text_off_a_terminal() -> None:
    changing, _, _ = plan(Script(closure=dict(OLD_CLOSURE)))
    same, _, _ = plan(Script(current=NEW, profile=NEW))
    lost, _, _ = plan(Script(), up=False)
    out = io.StringIO()
    render_plan(FleetPlan((changing, same, lost)), out)
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith(
        "h1  changes  oooooooo…-nixos-system-old → nnnnnnnn…-nixos-system-new"
    )
    assert "  ~ curl 8.6.0 → 8.7.1" in lines
    assert "  \N{MINUS SIGN} hello 2.12.1" in lines
    assert "  + jq 1.7.1" in lines
    assert "  copy 3 paths, 60.5 KiB · closure 53.7 KiB → 69.3 KiB" in lines
    assert lines[-2] == "3 hosts: 1 changing, 1 unchanged, 1 unreachable · 60.5 KiB to copy"
    assert lines[-1] == "changes on most hosts: curl (1 host), hello (1 host), jq (1 host)"


def test_the_plan_document_keeps_the_json_contract() -> None:
    changing, _, _ = plan(Script(closure=dict(OLD_CLOSURE)))
    same, _, _ = plan(Script(current=NEW, profile=NEW))
    lost, _, _ = plan(Script(), up=False)
    network = Network("net", "net.nix", (), (machine(),), ("h1",))
    evaluated = Evaluated(network, NixSettings())
    fleet = FleetPlan((changing, same, lost), would_build=("/nix/store/x.drv",))
    schema = json.loads(resources.files("nixlift.schemas").joinpath("plan.json").read_text())
    for no_build in (False, True):
        doc = plan_json(fleet, evaluated, no_build=no_build)
        jsonschema.validate(doc, schema)
    assert doc["build"]["would_build"] == ["/nix/store/x.drv"]
    first, unchanged, unreachable = doc["hosts"]  # (all three are the fake's h1)
    assert first["state"] == "changes" and first["packages"][0]["name"] == "curl"
    assert unchanged["copy"] == {
        "paths": 0,
        "bytes": 0,
        "fetchable_paths": 0,  # (substitutes are on: its caches would have nothing to send)
        "fetchable_bytes": 0,
    }
    assert unchanged["error"] is None
    # a host not read has every field it could not learn null, and its error as an object
    assert unreachable["packages"] is None and unreachable["copy"] is None
    assert unreachable["error"] == {
        "kind": "ssh",
        "message": "cannot reach h1",
        "hint": "is it up?",
        "log_tail": None,
    }
    assert doc["summary"]["unreachable"] == 1 and doc["summary"]["changing"] == 1


def test_the_live_view_shows_the_hosts_dry_activate_lines() -> None:
    console, buf = terminal()
    live = LiveRenderer(console, auto_refresh=False, clock=Clock())
    with live:
        live(PlanEvent(("h1",), Goal.DRY_ACTIVATE))
        lines = ("would restart the following units: sshd.service", "would start nginx.service")
        live(Report("h1", "dry-activate", lines))
        live(Finished(HostResult("h1", Status.OK)))
    shown = scrollback(play(buf.getvalue()))
    at = shown.index("h1: dry-activate")
    assert shown[at + 1 : at + 3] == [f"  │ {line}" for line in lines]


def test_the_command_line_starts_without_rich() -> None:
    """Only a plan (or a live view) for people loads rich: every other start stays quick."""
    code = "import sys, nixlift.cli.main; assert 'rich' not in sys.modules, 'rich loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failed_host_shows_the_end_of_what_failed_and_the_hint() -> None:
    failed = HostPlan(
        "h1",
        PlanState.FAILED,
        error="building h1's system failed",
        hint="fix the configuration",
        error_kind="build",
        detail="\n".join(f"line {i}" for i in range(30)),
    )
    out = io.StringIO()
    render_plan(FleetPlan((failed,)), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "h1  failed  building h1's system failed"
    assert lines[1:11] == [f"  | line {i}" for i in range(20, 30)]
    assert lines[11] == "  hint: fix the configuration"
    assert lines[-1] == "1 host: 0 changing, 0 unchanged, 1 failed · 0 B to copy"


def test_the_plan_is_coloured_as_color_says() -> None:
    changing, _, _ = plan(Script(closure=dict(OLD_CLOSURE)))
    shown = {}
    for color in ("always", "never", "auto"):
        out = io.StringIO()
        render_plan(FleetPlan((changing,)), out, color=color)
        shown[color] = out.getvalue()
    assert "\x1b[" in shown["always"]
    # never, and auto off a terminal: the same plain text
    assert shown["never"] == shown["auto"] and "\x1b" not in shown["never"]


def test_plan_takes_a_goal_as_deploy_does_and_its_own_dry_activate() -> None:
    def parsed(*argv: str) -> Invocation:
        return from_namespace(build_parser().parse_args(list(argv)), [])

    inv = parsed("plan", "n.nix", "boot")
    assert (inv.goal, inv.network.files, inv.dry_activate_plan) == (Goal.BOOT, ("n.nix",), False)
    # plan --dry-activate is the host's own dry run besides the plan, not the goal
    inv = parsed("plan", "--dry-activate", "n.nix")
    assert (inv.goal, inv.dry_activate_plan) == (Goal.SWITCH, True)
    inv = parsed("deploy", "n.nix", "--dry-run", "test")
    assert (inv.dry_run, inv.goal) == (True, Goal.TEST)
