"""nixlift's agent on real sandbox hosts: sent once, kept root-only, refusing what is not a NixOS
system, rolling back truthfully; and a deploy onto the machine nixlift runs on (apply-local)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shlex
import stat
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from conftest import SandboxFactory
from netkit import (
    activations,
    current_system,
    deploy_json,
    err,
    nixlift,
    profile_system,
    write_network,
)

from nixlift.agent.protocol import Agent, Started, script, version
from nixlift.deploy.lock import HostLock
from nixlift.model import DeploymentOptions, Machine
from nixlift.transport.base import Host
from nixlift.transport.ssh import SshHost
from nixlift_testbed import Sandbox

pytestmark = pytest.mark.integration

T = TypeVar("T")

# `run [h1]: ssh … nixlift-agent HASH LENGTH`: a call made again with the script in front has
# LENGTH > 0
_SENT = re.compile(r"nixlift-agent [0-9a-f]{16} [1-9][0-9]*'")
# every agent session nixlift starts (`run [h1]: ssh … nixlift-agent HASH LENGTH'`)
_SESSION = re.compile(r"nixlift-agent [0-9a-f]{16} [0-9]+'")
# the first call of a run sends it on its own stdin when the host asks for it
_ASKED = re.compile(
    r"\[h1\] the agent is not on the host: sending it on this call \((\d+) bytes, (\w+)\)"
)


def machine(sb: Sandbox, name: str = "h1") -> Machine:
    d = DeploymentOptions(target_host=name, ssh_options=("-F", str(sb.ssh_config)))
    return Machine(name, "x86_64-linux", "x86_64-linux", d, "", "")


async def with_agent(sb: Sandbox, tmp: Path, work: Callable[[Agent], Awaitable[T]]) -> T:
    async with SshHost.for_machine(machine(sb), tmp / "c") as host:
        return await work(Agent(host))


def test_the_agent_is_sent_once_and_only_root_may_read_it(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    first = nixlift("--debug", "deploy", net)
    assert first.returncode == 0, first.stderr
    # the first call of the run installs it, on that call: not made again with it in front
    [(size, how)] = _ASKED.findall(first.stderr)
    assert how == "gzip" and int(size) < len(script()) / 2
    assert _SENT.findall(first.stderr) == []
    again = nixlift("--debug", "deploy", net)
    assert again.returncode == 0, again.stderr
    assert _ASKED.findall(again.stderr) == _SENT.findall(again.stderr) == []  # never sent again
    # One agent session per deploy, the lock's: the other calls go through it. The first
    # deploy's confirmation is a new login by design; the second activates what the host
    # already runs and needs none.
    assert len(_SESSION.findall(first.stderr)) == 2
    assert len(_SESSION.findall(again.stderr)) == 1
    h1 = sb.host("h1")
    run = h1.path("/run/nixlift")
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for entry in run.iterdir():
        if entry.is_file():
            assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0, entry
    assert [p.name for p in run.glob("agent-*")] == [f"agent-{_hash(first.stderr)}"]


class _WithPath:
    """A host whose commands run with another PATH (one without gzip)."""

    def __init__(self, host: Host, path: str) -> None:
        self._host = host
        self._path = path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def run(self, argv: Sequence[str], **options: Any) -> Any:
        return await self._host.run(["env", f"PATH={self._path}", *argv], **options)


#: a directory of links to every program on the host's PATH but gzip (the first of each name)
_NO_GZIP = """d=$(mktemp -d)
for p in $(echo "$PATH" | tr : ' '); do for f in "$p"/*; do ln -s "$f" "$d/" 2>/dev/null; done; done
rm -f "$d/gzip"
echo "$d"
"""


def test_the_agent_goes_as_it_is_without_gzip_and_in_front_when_found_gone_later(
    sandbox_factory: SandboxFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sb = sandbox_factory(1)
    caplog.set_level(logging.DEBUG, logger="nixlift")
    agent_file = sb.host("h1").path(f"/run/nixlift/agent-{version()}")

    async def work(agent: Agent) -> None:
        path = (await agent.host.run(["sh", "-c", _NO_GZIP], what="no gzip")).stdout.strip()
        bare = Agent(cast(Host, _WithPath(agent.host, path)))
        assert (await bare.probe(None)).state.boot_id
        assert agent_file.read_bytes() == script()
        # gone between two calls of a run (the host rebooted): the call is made again with it
        agent_file.unlink()
        assert bare.installed
        assert isinstance(await bare.history(), list)
        assert agent_file.read_bytes() == script()
        # a call with a payload is not set aside on the host: it too is made again
        agent_file.unlink()
        fresh = Agent(agent.host)
        absent = "/nix/store/" + "0" * 32 + "-absent"
        assert (await fresh.closure([absent], substitutes=False)).missing == (absent,)
        assert agent_file.read_bytes() == script()

    asyncio.run(with_agent(sb, tmp_path, work))
    sent = [r.getMessage() for r in caplog.records if "nixlift-agent" in r.getMessage()]
    asked = [m for m in (r.getMessage() for r in caplog.records) if "sending it" in m]
    assert len(asked) == 1 and asked[0].endswith(
        f"({len(script()) + len(str(len(script()))) + 1} bytes, cat)"
    )
    # the two calls made again, with the script in front
    assert len([m for m in sent if _SENT.search(m)]) == 2


def _hash(debug: str) -> str:
    found = re.search(r"nixlift-agent ([0-9a-f]{16}) ", debug)
    assert found is not None
    return found.group(1)


def test_what_is_not_a_nixos_system_is_refused_before_the_profile_is_touched(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)

    async def work(agent: Agent) -> Started:
        return await agent.start(
            "/run/nixlift/act-notnixos",
            "/nix/store/not-a-system",
            "switch",
            set_profile=True,
            auto_rollback=True,
            magic=False,
            confirm_timeout=30,
            activation_timeout=30,
        )

    started = asyncio.run(with_agent(sb, tmp_path, work))
    assert started.refused
    h1 = sb.host("h1")
    assert profile_system(h1) is None and current_system(h1) is None


def test_the_probe_says_which_systems_the_host_has(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    done, _ = deploy_json(write_network(tmp_path, sb, "  h1 = { ... }: { };"))
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    running = current_system(h1)
    assert running is not None
    # in the host's store, valid, neither running nor in the profile: nix-store says so
    closure = subprocess.run(
        ["nix-store", "-qR", running], capture_output=True, text=True, check=True
    ).stdout.split()
    other = next(p for p in closure if p != running and h1.path(p).exists())
    # there, but never registered (a copy cut off before nix registered it)
    unregistered = "/nix/store/" + "0" * 32 + "-half-copied"
    h1.path(unregistered).mkdir()

    async def work(agent: Agent) -> dict[str, bool]:
        paths = [running, other, unregistered, "/nix/store/" + "1" * 32 + "-absent"]
        return {p: (await agent.probe(p)).has_system for p in paths}

    found = asyncio.run(with_agent(sb, tmp_path, work))
    assert list(found.values()) == [True, True, False, False], found


def test_activation_records_go_two_hours_after_they_started(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    h1 = sb.host("h1")
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    run = h1.path("/run/nixlift")

    def uptime() -> int:
        return int(float(Path("/proc/uptime").read_text().split()[0]))

    def leave(name: str, started: int | None) -> None:
        (run / name).mkdir()
        if started is not None:
            (run / name / "started").write_text(f"{started}\n")

    def deploy() -> set[str]:
        done, _ = deploy_json(net)
        assert done.returncode == 0, done.stderr
        return {p.name for p in run.glob("act-*")}

    first = deploy()
    assert len(first) == 1
    (own,) = first
    assert abs(int((run / own / "started").read_text()) - uptime()) <= 5
    leave("act-old", uptime() - 3 * 3600)  # (negative on a machine up for less: as meant)
    leave("act-recent", uptime() - 3600)
    leave("act-of-an-older-agent", None)
    left = deploy()
    assert "act-old" not in left
    assert {own, "act-recent", "act-of-an-older-agent"} <= left
    assert len(left) == 4, left  # and the second deploy's own
    # the older agent's is given its start now, so it goes two hours from now
    assert abs(int((run / "act-of-an-older-agent" / "started").read_text()) - uptime()) <= 5


def test_a_rollback_without_current_system_activates_the_previous_generation(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    good_net = write_network(
        tmp_path / "good", sb, '  h1 = { ... }: { environment.etc."v".text = "good"; };'
    )
    done, hosts = deploy_json(good_net)
    assert done.returncode == 0, done.stderr
    good = hosts["h1"]["system"]
    h1 = sb.host("h1")
    h1.path("/run/current-system").unlink()  # as after a boot that did not set it
    bad = write_network(
        tmp_path / "bad", sb, "  h1 = { ... }: { standin.activation.exitCode = 4; };"
    )
    done, hosts = deploy_json(bad)
    assert done.returncode == 1
    assert hosts["h1"]["status"] == "rolled-back"
    # the report says what the host runs: the previous generation, activated again
    assert f"it runs {good}" in err(hosts["h1"])
    assert current_system(h1) == good and profile_system(h1) == good
    assert activations(h1)[-1]["system"] == good


def test_apply_local_deploys_onto_the_machine_it_runs_on(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """nixlift run inside a sandbox host (its own /nix and /run) deploys that host, no SSH."""
    sb = sandbox_factory(1)
    net = write_network(
        tmp_path,
        sb,
        """
  h1 = { ... }: { deployment.targetHost = null; deployment.allowLocalDeployment = true;
                  environment.etc."where".text = "local"; };
  h2 = { ... }: { deployment.targetHost = null; };
""",
    )
    inside = [
        INSIDE_PYTHON,
        "-m",
        "nixlift",
        "apply-local",
        str(net),
        "--json",
        "--progress",
        "plain",
    ]
    done = _inside(sb, inside)
    assert done.returncode == 0, done.stderr
    [host] = json.loads(done.stdout)["hosts"]
    assert host["name"] == "h1" and host["status"] == "ok" and host["activated"]
    assert current_system(sb.host("h1")) == host["system"]
    # a machine without allowLocalDeployment is refused, and one without targetHost cannot be
    # deployed over SSH
    refused = _inside(sb, [*inside[:4], str(net), "--node", "h2"])
    assert refused.returncode == 2 and "allowLocalDeployment" in refused.stderr
    over_ssh = nixlift("deploy", net, "--on", "h2")
    assert over_ssh.returncode == 1 and "apply-local" in over_ssh.stderr


#: a sandbox host has its own empty /root, so the venv's interpreter (under /root/.pyenv here)
#: is not there: Debian's python3 runs nixlift from the source tree instead
INSIDE_PYTHON = "/usr/bin/python3"
SRC = Path(__file__).resolve().parents[2] / "src"


def _inside(sb: Sandbox, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if not Path(INSIDE_PYTHON).exists():
        pytest.skip(f"{INSIDE_PYTHON} is missing (scripts/install.sh installs it)")
    env = f"NIX_CONFIG='substituters =' PYTHONPATH={shlex.quote(str(SRC))}"
    command = f"cd / && {env} {shlex.join(argv)}"
    return subprocess.run(
        sb.ssh_argv("h1", command), capture_output=True, text=True, timeout=300, check=False
    )


def test_an_activation_started_through_the_lock_does_not_hold_the_lock(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """The activation runs detached (its watchdog waits for magic rollback's confirmation); the
    deployers' lock must go with the deployer's session, not stay open in that process."""
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]

    async def work(agent: Agent) -> tuple[bool, str]:
        lock = HostLock(agent, {"what": "a test"}, 0, system)
        await lock.acquire()
        directory = "/run/nixlift/act-heldlock"
        started = await agent.start(  # through the lock's session
            directory,
            system,
            "test",
            set_profile=False,
            auto_rollback=True,
            magic=True,
            confirm_timeout=60,
            activation_timeout=30,
        )
        assert started.status == 0
        await lock.release()
        # The watchdog still waits for its confirmation (it holds activation.lock, which keeps
        # a second deployer out until it has decided); the deployers' lock is free.
        probe = await agent.host.run(
            ["flock", "-n", "/run/nixlift/lock", "true"], what="trying the lock", check=False
        )
        busy = await agent.host.run(
            ["flock", "-n", "/run/nixlift/activation.lock", "true"], what="trying", check=False
        )
        decision = await agent.abort(directory, "the test is over")
        return probe.returncode == 0 and busy.returncode != 0, decision.outcome.value

    free, outcome = asyncio.run(with_agent(sb, tmp_path, work))
    assert free
    assert outcome == "rolled-back"
