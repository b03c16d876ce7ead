"""`nixlift plan`, `deploy --confirm` and dry-activate on real sandbox hosts: a plan names each
host's package changes with their versions and what the copy would send, leaves every host
exactly as it was, says which host it cannot reach; the diff is nix's own; --confirm asks on
a real terminal; dry-activate's lines are shown without -v."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SandboxFactory
from netkit import activations, current_system, deploy_json, nixlift, profile_system, write_network

from nixlift.agent.answers import HostClosure, Survey
from nixlift.agent.protocol import Agent
from nixlift.deploy.lock import HostLock
from nixlift.model import DeploymentOptions, Machine
from nixlift.nix.argv import NixSettings
from nixlift.nix.closure import diff, local_closures, nix_line
from nixlift.transport.ssh import SshHost
from nixlift_testbed import SandboxHost

pytestmark = pytest.mark.integration

# h1 gets jq and curl instead of hello when PACKAGES says so; every host has a key
MACHINE = """
  NAME = { pkgs, ... }: {
    environment.systemPackages = PACKAGES;
    deployment.keys.token = { text = "TOKEN"; };
  };"""


def network(tmp: Path, sb: Any, packages: str = "[ pkgs.hello ]", token: str = "t1") -> Path:
    body = "".join(
        MACHINE.replace("NAME", name)
        .replace("PACKAGES", packages if name == "h1" else "[ pkgs.hello ]")
        .replace("TOKEN", token)
        for name in ("h1", "h2", "h3")
    )
    return write_network(tmp, sb, body)


def snapshot(host: SandboxHost) -> dict[str, Any]:
    """Everything a plan must leave as it was on a host."""
    run = host.path("/run/nixlift")
    keys = host.path("/nix/var/nixlift/keys")
    run_keys = host.path("/run/keys")
    return {
        "current": current_system(host),
        "profile": host.readlink("/nix/var/nix/profiles/system"),
        "generations": sorted(p.name for p in host.path("/nix/var/nix/profiles").iterdir()),
        "history": host.read_text("/nix/var/nixlift/history.jsonl"),
        # the lock's files, activation directories: all but the agent itself
        "run": sorted(p.name for p in run.iterdir() if not p.name.startswith("agent-")),
        "keys": sorted((p.name, p.read_bytes()) for p in keys.iterdir()) if keys.exists() else [],
        "run_keys": sorted((p.name, p.stat().st_mtime_ns) for p in run_keys.iterdir())
        if run_keys.exists()
        else [],
        "store": sorted(p.name for p in host.path("/nix/store").iterdir()),
        "activations": activations(host),
    }


def test_plan_names_each_hosts_changes_and_leaves_every_host_as_it_was(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(3)
    done, _ = deploy_json(network(tmp_path / "a", sb))
    assert done.returncode == 0, done.stderr
    before = {name: snapshot(sb.host(name)) for name in sb.names}
    # h1: jq and curl added, hello removed; a new token for every host
    changed = network(tmp_path / "b", sb, "[ pkgs.jq pkgs.curl ]", token="t2")
    shown = nixlift("plan", changed)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    h1 = lines[: lines.index(next(x for x in lines if x.startswith("h2 ")))]
    assert h1[0].startswith("h1  changes  ")
    assert "  + curl 8.6.0" in h1 and "  + jq 1.7.1" in h1
    assert "  \N{MINUS SIGN} hello 2.12.1" in h1
    assert any(re.fullmatch(r"  copy 4 paths, \d+\.\d KiB · closure .* → .*", x) for x in h1)
    assert "  activates: it runs another system" in h1
    assert "  keys: uploads token" in h1
    for name in ("h2", "h3"):
        assert any(x.startswith(f"{name}  unchanged  runs ") for x in lines), shown.stdout
    assert re.search(
        r"^3 hosts: 1 changing, 2 unchanged · \d+\.\d KiB to copy$", shown.stdout, re.M
    )
    assert "progress" not in shown.stderr and shown.stderr == ""
    # NixOps' deploy --dry-run is the plan, and stops there
    dry = nixlift("deploy", changed, "--dry-run")
    assert (dry.returncode, dry.stdout) == (0, shown.stdout)
    # --json: the same facts
    doc = json.loads(nixlift("plan", changed, "--json").stdout)
    assert (doc["version"], doc["command"]) == (1, "plan")
    hosts = {h["name"]: h for h in doc["hosts"]}
    packages = {p["name"]: p for p in hosts["h1"]["packages"]}
    assert packages["jq"]["change"] == "added" and packages["jq"]["new_versions"] == ["1.7.1"]
    assert packages["hello"]["change"] == "removed"
    assert packages["hello"]["old_versions"] == ["2.12.1"]
    assert hosts["h1"]["copy"]["paths"] == 4 and hosts["h1"]["copy"]["bytes"] > 60000
    assert hosts["h1"]["current"] == current_system(sb.host("h1"))
    assert hosts["h1"]["keys"]["upload"] == ["token"]
    assert {hosts["h2"]["state"], hosts["h3"]["state"]} == {"unchanged"}
    assert hosts["h2"]["packages"] == [] and hosts["h2"]["copy"]["paths"] == 0
    assert hosts["h2"]["copy"]["bytes"] == 0 and hosts["h2"]["error"] is None
    assert doc["summary"]["changing"] == 1 and doc["summary"]["unchanged"] == 2
    # info says why h1 is out of date (its new system is built here now)
    info = nixlift("info", changed, "--json")
    assert info.returncode == 0, info.stderr
    rows = {h["name"]: h for h in json.loads(info.stdout)["hosts"]}
    assert rows["h1"]["state"] == "out-of-date"
    assert re.fullmatch(r"\+2 \N{MINUS SIGN}1 packages, \d+\.\d KiB to copy", rows["h1"]["why"])
    assert rows["h1"]["changes"] == {
        "added": 2,
        "removed": 1,
        "changed": 0,
        "copy_bytes": hosts["h1"]["copy"]["bytes"],
    }
    assert rows["h2"]["state"] == "up-to-date" and rows["h2"]["why"] is None
    shown = nixlift("info", changed)
    assert re.search(r"^h1 .* out of date +\+2 \N{MINUS SIGN}1 packages", shown.stdout, re.M)
    # every host exactly as it was: systems, profiles, generations, history, lock, keys, store
    assert {name: snapshot(sb.host(name)) for name in sb.names} == before
    # and a deploy of the plan does what it said
    done, _ = deploy_json(changed)
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_a_plan_of_an_unreachable_host_says_so_and_exits_1(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    asyncio.run(sb.host("h2").stop())
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };\n  h2 = { ... }: { };")
    done = nixlift("plan", net)
    assert done.returncode == 1
    assert re.search(r"^h2  unreachable  cannot reach h2", done.stdout, re.M), done.stdout
    assert "hint: " in done.stdout
    assert "1 unreachable" in done.stdout
    doc = json.loads(nixlift("plan", net, "--json").stdout)
    h2 = next(h for h in doc["hosts"] if h["name"] == "h2")
    assert h2["state"] == "unreachable" and h2["error"]["kind"] == "ssh"
    assert h2["error"]["hint"]
    # nothing it could not read is guessed
    assert h2["current"] is None and h2["packages"] is None and h2["copy"] is None
    assert doc["summary"]["unreachable"] == 1
    # info, one host at a time, says the same
    info = nixlift("info", net, "--parallel", "1", "--json")
    assert info.returncode == 1
    rows = {h["name"]: h for h in json.loads(info.stdout)["hosts"]}
    assert rows["h2"]["state"] == "unreachable" and rows["h2"]["error"]["kind"] == "ssh"
    assert rows["h1"]["state"] == "not-deployed" and rows["h1"]["why"]
    assert current_system(sb.host("h1")) is None  # h1 was only read


def test_no_build_lists_what_building_would_take_and_builds_nothing(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path,
        sb,
        """  h1 = { pkgs, ... }: { environment.systemPackages =
    [ (pkgs.writeTextDir "share/nonce" sb.nonce) ]; };""",
    )
    done = nixlift("plan", net, "--no-build", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    [h1] = doc["hosts"]
    assert doc["summary"]["copy_unknown"] == 1 and h1["copy"] is None
    assert h1["state"] == "changes" and h1["built"] is False
    assert not Path(h1["system"]).exists()  # nothing was built
    would = doc["build"]["would_build"]
    assert any(p.endswith("-nixos-system-h1-24.05.standin.drv") for p in would)
    assert any(p.endswith("-nonce.drv") for p in would)
    shown = nixlift("plan", net, "--no-build")
    assert "not built yet" in shown.stdout and "building would build" in shown.stdout
    # a total that leaves a host out says so ("0 B" alone would read as "nothing to copy")
    assert "0 B to copy (1 host not counted: not built here)" in shown.stdout


def test_the_diff_is_what_nix_store_diff_closures_says(tmp_path: Path) -> None:
    """Real closures here, compared by nixlift and by nix itself."""
    (tmp_path / "c.nix").write_text(
        """let
  mk = name: size: refs: derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c"
      "mkdir $out; head -c ${toString size} /dev/zero > $out/d; echo ${toString refs} > $out/r" ];
  };
  common = [ (mk "zlib-1.3" 100 [ ]) (mk "hello-2.12.1-man" 100 [ ]) ];
in {
  before = mk "top" 10 (common ++ [ (mk "libfoo-1.0" 1000 [ ]) (mk "extra-1.0" 100 [ ])
    (mk "system-path" 100 [ ]) (mk "etc" 100 [ ]) (mk "grow-3" 100 [ ])
    (mk "glibc-2.35-lib32" 1 [ ])
    (mk "foo-_bar" 1 [ ]) (mk "python3-3.11.9" 1 [ ]) (mk "python3-3.12.4" 1 [ ]) ]);
  after = mk "top" 20 (common ++ [ (mk "libfoo-1.1" 30000 [ ]) (mk "system-path" 200 [ ])
    (mk "etc" 9000 [ ]) (mk "grow-3" 50000 [ ]) (mk "newpkg-0.1" 100 [ ])
    (mk "glibc-2.36-lib32" 1 [ ]) (mk "python3-3.12.4" 1 [ ]) (mk "python3-3.13.0" 1 [ ])
    (mk "unversioned" 1 [ ]) ]);
}
"""
    )
    paths = {}
    for which in ("before", "after"):
        built = subprocess.run(
            ["nix-build", str(tmp_path / "c.nix"), "-A", which, "--no-out-link"],
            capture_output=True,
            text=True,
            check=True,
        )
        paths[which] = built.stdout.strip()
    nix = subprocess.run(
        [
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "store",
            "diff-closures",
            paths["before"],
            paths["after"],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = _ANSI.sub("", nix.stdout).splitlines()
    found = asyncio.run(local_closures([paths["before"], paths["after"]], NixSettings()))
    ours = [nix_line(c) for c in diff(found[paths["before"]], found[paths["after"]])]
    assert ours == theirs
    assert len(ours) >= 8  # every kind of line is there


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _on_a_terminal(argv: list[str], answer: str, timeout: float = 180) -> tuple[int, str]:
    """Run argv on a terminal of its own; type `answer` at the confirmation prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.execvpe(argv[0], argv, {**os.environ, "NIX_CONFIG": "substituters =\n"})
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not answered and b"? [y/N] " in out:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_deploy_confirm_asks_on_the_terminal(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };\n  h2 = { ... }: { };")
    argv = [sys.executable, "-m", "nixlift", "deploy", str(net), "--confirm", "--progress", "plain"]
    code, out = _on_a_terminal(argv, "n")
    out = _ANSI.sub("", out)
    assert code == 1, out
    assert "h1  changes  nothing → " in out and "Deploy to 2 hosts? [y/N] " in out
    assert "not deployed; nothing was changed" in out
    for name in sb.names:
        host = sb.host(name)
        assert current_system(host) is None and profile_system(host) is None
        assert host.read_text("/nix/var/nixlift/history.jsonl") is None
    code, out = _on_a_terminal(argv, "y")
    assert code == 0, out
    assert "2 of 2 hosts succeeded" in out
    for name in sb.names:
        assert current_system(sb.host(name)) is not None
    # without a terminal it refuses before any work, unless --yes
    refused = subprocess.run(
        [*argv, "--json"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert "standard input is not a terminal" in refused.stderr and "--yes" in refused.stderr
    error = json.loads(refused.stdout)["error"]  # --json: the error is a document
    assert error["kind"] == "usage" and "--yes" in error["hint"]
    done, hosts = deploy_json(net, "--confirm", "--yes")
    assert done.returncode == 0, done.stderr
    assert (
        "h1  unchanged  runs " in done.stderr and "--yes: deploying without asking" in done.stderr
    )
    assert {h["status"] for h in hosts.values()} == {"ok"}


def test_dry_activate_shows_what_the_host_would_do_without_v(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    logs = tmp_path / "logs"
    done = nixlift("deploy", net, "dry-activate", "--progress", "plain", "--log-dir", logs)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\[h1\]   would activate /nix/store/\S+-nixos-system-h1", done.stderr, re.M)
    assert "would activate /nix/store/" in (logs / "h1.log").read_text()
    done, hosts = deploy_json(net, "dry-activate")
    [line] = hosts["h1"]["dry_activate"]
    assert line.startswith("would activate /nix/store/")
    assert current_system(sb.host("h1")) is None  # dry-activate activates nothing
    # plan --dry-activate: the same lines in the host's block (it copies the system there)
    shown = nixlift("plan", net, "--dry-activate")
    assert shown.returncode == 0, shown.stderr
    assert "  dry-activate:" in shown.stdout and "  │ would activate /nix/store/" in shown.stdout
    # a plan of another goal: as `deploy boot` would run
    shown = nixlift("plan", net, "push")
    assert "  no activation: the goal push does not activate" in shown.stdout, shown.stdout
    assert json.loads(nixlift("plan", net, "boot", "--json").stdout)["goal"] == "boot"
    assert current_system(sb.host("h1")) is None


def test_the_agent_reads_a_closure_and_a_plan_does_not_wait_for_a_held_lock(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path, sb, "  h1 = { pkgs, ... }: { environment.systemPackages = [ pkgs.jq ]; };"
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    system = str(hosts["h1"]["system"])
    absent = "/nix/store/" + "0" * 32 + "-absent"
    d = DeploymentOptions(target_host="h1", ssh_options=("-F", str(sb.ssh_config)))
    m = Machine("h1", "x86_64-linux", "x86_64-linux", d, "", "")
    before = snapshot(sb.host("h1"))

    async def under_a_held_lock() -> tuple[Survey, HostClosure, subprocess.CompletedProcess[str]]:
        async with (
            SshHost.for_machine(m, tmp_path / "a") as holding,
            SshHost.for_machine(m, tmp_path / "b") as reading,
        ):
            lock = HostLock(Agent(holding), {"what": "a test deploy"}, 0, system)
            await lock.acquire()
            try:
                survey = await Agent(reading).survey(system)
                there = await Agent(reading).closure([system, absent], substitutes=False)
                shown = await asyncio.to_thread(nixlift, "plan", net)
            finally:
                await lock.release()
        return survey, there, shown

    survey, there, shown = asyncio.run(under_a_held_lock())
    assert survey.holder == {"what": "a test deploy"}
    assert survey.probe.state.current_system == system
    # the running closure with its NAR sizes, as nix-store says here of the same paths
    paths = subprocess.run(
        ["nix-store", "--query", "--requisites", system], capture_output=True, text=True, check=True
    ).stdout.split()
    sizes = subprocess.run(
        ["nix-store", "--query", "--size", *paths], capture_output=True, text=True, check=True
    ).stdout.split()
    assert there.current == system
    assert dict(there.closure) == {p: int(s) for p, s in zip(paths, sizes, strict=True)}
    assert there.missing == (absent,)
    # a plan neither waits for the lock nor fails on it: it says who holds it
    assert shown.returncode == 0, shown.stderr
    assert "  note: a test deploy holds its lock: what it runs may change" in shown.stdout
    # nothing left behind (the closure's scratch files, a lock of its own, …)
    assert snapshot(sb.host("h1")) == before


def test_a_host_whose_system_does_not_build_fails_its_plan_and_the_others_go_on(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        """  h1 = { pkgs, ... }: { environment.systemPackages =
    [ (pkgs.runCommand "broken-${sb.nonce}" { } "echo it broke here; exit 3") ]; };
  h2 = { ... }: { };""",
    )
    shown = nixlift("plan", net)
    assert shown.returncode == 1
    assert re.search(r"^h1  failed  ", shown.stdout, re.M), shown.stdout
    assert "  | it broke here" in shown.stdout
    assert re.search(r"^h2  changes  nothing → ", shown.stdout, re.M)
    assert "2 hosts: 1 changing, 0 unchanged, 1 failed" in shown.stdout
    doc = json.loads(nixlift("plan", net, "--json").stdout)
    h1 = next(h for h in doc["hosts"] if h["name"] == "h1")
    assert h1["state"] == "failed" and h1["error"]["kind"] == "build"
    assert "it broke here" in (h1["error"]["log_tail"] or "")
