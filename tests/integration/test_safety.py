"""Faults, and what every host runs afterwards: automatic and magic rollback, the lock, the
history and manual rollback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import (
    activations,
    begun,
    by_name,
    current_system,
    deploy_json,
    err,
    hint,
    nixlift,
    profile_system,
)
from netkit import write_network as _write_network

from nixlift_testbed import Sandbox, SandboxHost

pytestmark = pytest.mark.integration


def write_network(directory: Path, sb: Sandbox, h1: str) -> Path:
    return _write_network(directory, sb, f"  h1 = {{ pkgs, ... }}: {{ {h1} }};\n")


def good_then(sb: Sandbox, tmp_path: Path, second: str) -> tuple[str, Path]:
    """Deploy a good system to h1; return it and a network whose h1 is `second`."""
    done, hosts = deploy_json(
        write_network(tmp_path / "good", sb, 'environment.etc."v".text = "good";')
    )
    assert done.returncode == 0, done.stderr
    return hosts["h1"]["system"], write_network(tmp_path / "next", sb, second)


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nixlift", *map(str, args), "--progress", "plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NIX_CONFIG": "substituters =\n"},
    )


def wait_for_line(child: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    assert child.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}:\n" + "".join(seen))


def wait_until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.1)
    return False


def test_failed_activation_rolls_back_to_the_previous_system(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, bad = good_then(sb, tmp_path, "standin.activation.exitCode = 4;")
    done, hosts = deploy_json(bad)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "rolled-back"
    assert "rolled back to the previous system" in err(hosts["h1"])
    h1 = sb.host("h1")
    assert current_system(h1) == good and profile_system(h1) == good
    # the failed generation is gone; the previous one is current again
    gens = by_name(json.loads(nixlift("list-generations", bad, "--json").stdout))["h1"][
        "generations"
    ]
    assert [(g["system"], g["current"], g["running"]) for g in gens] == [(good, True, True)]
    # the old system was activated again after the failed one
    assert [a["system"] for a in activations(h1)][-1] == good


def test_deployer_killed_after_activation_host_rolls_back(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, slow = good_then(
        sb,
        tmp_path,
        'environment.etc."v".text = "new"; '
        "standin.activation.sleepSeconds = 1; "
        "deployment.confirmTimeout = 2;",
    )
    h1 = sb.host("h1")
    before = len(begun(h1))
    child = start("deploy", slow)
    # killed once the activation has begun on the host
    assert wait_until(lambda: len(begun(h1)) > before, 30)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # it switched (the activation was detached from the dead deployer) ...
    assert wait_until(lambda: current_system(h1) not in (None, good), 10)
    # ... and, never confirmed, went back by itself within the confirmation time
    assert wait_until(lambda: current_system(h1) == good, 10)
    assert profile_system(h1) == good
    # every activation that began also ended (the rollback's own one ends just after it has
    # switched /run/current-system back: waited for, not raced)
    assert wait_until(lambda: len(begun(h1)) == len(activations(h1)), 10)


def test_a_push_goes_on_while_another_deploy_holds_the_lock(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """A push activates nothing: it reads the host's state and records its history in the same
    session a deploy uses, without the host's lock."""
    sb = sandbox_factory(1)
    _, slow = good_then(
        sb, tmp_path, 'environment.etc."v".text = "slow"; standin.activation.sleepSeconds = 6;'
    )
    first = start("deploy", slow, "--json")
    wait_for_line(first, "activating: switch")
    pushed = write_network(tmp_path / "pushed", sb, 'environment.etc."v".text = "pushed";')
    done, hosts = deploy_json(pushed, "push")
    assert done.returncode == 0, done.stderr
    assert (hosts["h1"]["status"], hosts["h1"]["copied"]) == ("ok", True)
    first.communicate(timeout=60)
    assert first.returncode == 0
    shown = nixlift("history", pushed, "--json")
    records = by_name(json.loads(shown.stdout))["h1"]["records"]
    assert [r["goal"] for r in records][-2:] == ["push", "switch"]


def test_a_push_is_recorded_without_waiting_for_the_host(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """A push's record goes ahead while its copy runs; the host writes it once the session
    ends, if the system arrived: the next command finds it, and a host that had the system
    already gets no record (nothing was pushed)."""
    sb = sandbox_factory(1)
    goals = []
    for n in range(3):
        net = write_network(tmp_path / f"p{n}", sb, f'environment.etc."v".text = "pushed {n}";')
        done, hosts = deploy_json(net, "push")
        assert done.returncode == 0, done.stderr
        assert hosts["h1"]["copied"] is True
        shown = nixlift("history", net, "--json")
        records = by_name(json.loads(shown.stdout))["h1"]["records"]
        goals.append([(r["goal"], r["result"], r["system"]) for r in records])
        assert goals[-1][-1] == ("push", "ok", hosts["h1"]["system"]), goals
    done, hosts = deploy_json(net, "push")  # the same system again: nothing copied
    assert hosts["h1"]["copied"] is False
    records = by_name(json.loads(nixlift("history", net, "--json").stdout))["h1"]["records"]
    assert len(records) == len(goals[-1])


def test_two_deployers_never_activate_at_once(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    _, slow = good_then(
        sb, tmp_path, 'environment.etc."v".text = "slow"; standin.activation.sleepSeconds = 6;'
    )
    first = start("deploy", slow, "--json")
    wait_for_line(first, "activating: switch")
    second, hosts = deploy_json(slow)
    assert second.returncode == 1
    assert hosts["h1"]["status"] == "failed"
    assert "h1 is locked by" in err(hosts["h1"]) and "deploying net" in err(hosts["h1"])
    assert "--lock-wait" in hint(hosts["h1"])
    first.communicate(timeout=60)
    assert first.returncode == 0
    # waiting instead: it gets the lock once the first is done
    third = start("deploy", slow, "--json", "--lock-wait", "60")
    fourth, hosts = deploy_json(slow, "--lock-wait", "60")
    _, third_err = third.communicate(timeout=60)
    assert third.returncode == 0 and fourth.returncode == 0, third_err + fourth.stderr
    h1 = sb.host("h1")
    assert len(begun(h1)) == len(activations(h1))
    assert len(begun(h1)) == 4  # good, first, third, fourth: one after another


def test_a_dead_deployers_lock_is_released(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    # a build slow enough to kill the deployer while it holds the lock, before it activates
    _, slow = good_then(
        sb,
        tmp_path,
        "environment.systemPackages = [ (pkgs.runCommand "
        '"slow-${sb.nonce}" { } "sleep 20; mkdir $out") ];',
    )
    child = start("deploy", slow)
    wait_for_line(child, "building")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    fast = write_network(tmp_path / "fast", sb, 'environment.etc."v".text = "after";')
    done, hosts = deploy_json(fast, "--lock-wait", "10")
    assert done.returncode == 0, done.stderr
    assert current_system(sb.host("h1")) == hosts["h1"]["system"]


def test_history_and_manual_rollback(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    good, second = good_then(sb, tmp_path, 'environment.etc."v".text = "second";')
    done, hosts = deploy_json(second)
    assert done.returncode == 0, done.stderr
    newer = hosts["h1"]["system"]
    h1: SandboxHost = sb.host("h1")
    assert current_system(h1) == newer

    shown = nixlift("history", second, "--json")
    records = by_name(json.loads(shown.stdout))["h1"]["records"]
    assert [(r["system"], r["goal"], r["result"]) for r in records] == [
        (good, "switch", "ok"),
        (newer, "switch", "ok"),
    ]
    assert records[0]["deployment"] == "net" and records[0]["user"]

    back = nixlift("rollback", second)
    assert back.returncode == 0, back.stderr
    assert current_system(h1) == good and profile_system(h1) == good
    gens = by_name(json.loads(nixlift("list-generations", second, "--json").stdout))["h1"][
        "generations"
    ]
    assert [(g["number"], g["current"]) for g in gens] == [(1, True), (2, False)]
    forward = nixlift("rollback", second, "--to", "2")
    assert forward.returncode == 0, forward.stderr
    assert current_system(h1) == newer
    missing = nixlift("rollback", second, "--to", "7")
    assert missing.returncode == 1 and "has no generation 7 (it has: 1, 2)" in missing.stderr
    last = by_name(json.loads(nixlift("history", second, "--json").stdout))["h1"]["records"][-1]
    assert last["goal"] == "rollback to 2" and last["system"] == newer


def test_hanging_activation_is_stopped_and_rolled_back(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, hang = good_then(
        sb, tmp_path, "standin.activation.hang = true; deployment.activationTimeout = 2;"
    )
    started = time.monotonic()
    done, hosts = deploy_json(hang)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "rolled-back"
    assert "took longer than activationTimeout" in err(hosts["h1"])
    assert current_system(sb.host("h1")) == good and profile_system(sb.host("h1")) == good


def test_reboot_into_the_new_system(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sb = sandbox_factory(1)
    _, new = good_then(sb, tmp_path, 'environment.etc."v".text = "rebooted";')
    h1 = sb.host("h1")
    boot_before = h1.boot_id()
    done, hosts = deploy_json(new, "--reboot", "--reboot-timeout", "60")
    assert done.returncode == 0, done.stderr
    assert h1.boot_id() != boot_before
    assert current_system(h1) == hosts["h1"]["system"] == profile_system(h1)
    assert "reboot" in hosts["h1"]["durations"]


def test_reboot_into_a_failing_system_goes_back(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, bad = good_then(
        sb,
        tmp_path,
        'environment.etc."v".text = "unhealthy"; '
        'deployment.healthChecks.cmd = [ { cmd = [ "false" ]; period = 1; '
        "timeout = 2; } ];",
    )
    h1 = sb.host("h1")
    done, hosts = deploy_json(bad, "--reboot", "--reboot-timeout", "60")
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "rolled-back", hosts["h1"]
    assert "rebooted into its previous system" in err(hosts["h1"])
    assert current_system(h1) == good


def test_config_that_locks_out_ssh_rolls_itself_back(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    good, _ = good_then(sb, tmp_path, "")
    lockout = _write_network(
        tmp_path / "lockout",
        sb,
        """
  h1 = { lib, ... }: {
    environment.etc."v".text = "no way in";
    users.users.root.openssh.authorizedKeys.keys = lib.mkForce [ ];
  };
  h2 = { ... }: { };
""",
    )
    started = time.monotonic()
    done, hosts = deploy_json(lockout)
    assert done.returncode == 1
    # not the 30 s of confirmTimeout: the deployer tells the host at once, over the connection
    # it still has, that no new login got in
    assert time.monotonic() - started < 20
    assert hosts["h1"]["status"] == "rolled-back", hosts["h1"]
    assert "rolled itself back" in err(hosts["h1"])
    assert "Permission denied" in done.stderr or "authentication" in hint(hosts["h1"])
    assert hosts["h2"]["status"] == "ok"
    h1 = sb.host("h1")
    assert current_system(h1) == good and profile_system(h1) == good
    locked_out, back = activations(h1)[-2:]
    assert back["system"] == good and back["time"] - locked_out["time"] < 3
    # the previous system let us in, and does again
    again = nixlift("exec", lockout, "--on", "h1", "--", "true")
    assert again.returncode == 0, again.stderr


def test_reboot_uses_a_one_shot_entry_until_the_new_system_is_healthy(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, new = good_then(sb, tmp_path, 'environment.etc."v".text = "once";')
    h1 = sb.host("h1")
    done, hosts = deploy_json(new, "--reboot", "--reboot-timeout", "60")
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]
    boots = [
        json.loads(line)
        for line in (h1.read_text("/var/lib/standin/boots.jsonl") or "").splitlines()
    ]
    # the new system was booted through the one-shot entry, then made the default
    assert boots[-1]["system"] == system and boots[-1]["entry"] == "oneshot"
    assert (h1.read_text("/var/lib/standin/boot-default") or "").strip() == system
    assert current_system(h1) == system != good


def test_a_host_that_never_comes_back_falls_back_on_its_next_boot(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good, _ = good_then(sb, tmp_path, "")
    lockout = _write_network(
        tmp_path / "lockout",
        sb,
        """
  h1 = { lib, ... }: {
    environment.etc."v".text = "unreachable after boot";
    users.users.root.openssh.authorizedKeys.keys = lib.mkForce [ ];
  };
""",
    )
    done, hosts = deploy_json(lockout, "--reboot", "--reboot-timeout", "6")
    assert done.returncode == 1
    assert "did not come back" in err(hosts["h1"])
    assert "one-shot entry" in hint(hosts["h1"]) and good in hint(hosts["h1"])
    h1 = sb.host("h1")
    assert current_system(h1) == hosts["h1"]["system"]  # it booted the new one, once
    # a power cycle later (someone at the console), it runs the old system and lets us in
    asyncio.run(h1.reboot())
    assert current_system(h1) == good
    again = nixlift("exec", lockout, "--", "true")
    assert again.returncode == 0, again.stderr


def test_history_names_the_networks_git_commit(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path / "repo", sb, 'environment.etc."v".text = "tracked";')
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "network"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    done, _ = deploy_json(net)
    assert done.returncode == 0, done.stderr
    net.write_text(net.read_text() + "\n")  # an uncommitted change
    done, _ = deploy_json(net)
    records = by_name(json.loads(nixlift("history", net, "--json").stdout))["h1"]["records"]
    assert [r["commit"] for r in records] == [head, head + "+dirty"]


def test_allow_reboot_reboots_hosts_that_ask_for_it(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    good_then(sb, tmp_path, "")
    net = _write_network(
        tmp_path / "kernel",
        sb,
        """
  h1 = { ... }: { environment.etc."v".text = "new kernel"; standin.activation.exitCode = 100; };
  h2 = { ... }: { environment.etc."v".text = "no reboot needed"; };
""",
    )
    h1, h2 = sb.host("h1"), sb.host("h2")
    boots = (h1.boot_id(), h2.boot_id())
    done, hosts = deploy_json(net, "--allow-reboot", "--reboot-timeout", "60")
    assert done.returncode == 0, done.stderr
    assert h1.boot_id() != boots[0] and h2.boot_id() == boots[1]
    assert "reboot" in hosts["h1"]["durations"] and "reboot" not in hosts["h2"]["durations"]
    assert current_system(h1) == hosts["h1"]["system"]
