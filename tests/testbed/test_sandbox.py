"""Sandbox hosts against real unshare, sshd, ssh and nix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nixlift import proc
from nixlift_testbed import (
    Sandbox,
    SandboxError,
    SandboxHost,
    down,
    load,
    standin_nixpkgs,
    status,
    up,
    write_network,
)
from nixlift_testbed.hosts import CLAIMS_DIR, STATE_FILE, BlockClaims, process_alive, process_start

pytestmark = pytest.mark.integration

SandboxFactory = Callable[..., Sandbox]


def run(argv: list[str], **kwargs: Any) -> proc.Completed:
    return asyncio.run(proc.run(argv, **kwargs))


def ssh(
    sandbox: Sandbox, host: str, command: str, *, user: str | None = None, **kwargs: Any
) -> proc.Completed:
    return run(sandbox.ssh_argv(host, command, user=user), timeout=30, **kwargs)


def add_to_store(tmp_path: Path, name: str = "payload") -> str:
    """A new store path in the deployer's store, with unique content."""
    source = tmp_path / name
    source.write_text(f"nixlift sandbox test {uuid.uuid4()}\n")
    return run(["nix-store", "--add", str(source)]).stdout.strip()


def copy_closure(sandbox: Sandbox, host: str, *paths: str) -> None:
    env = {"NIX_SSHOPTS": sandbox.nix_sshopts}
    run(["nix-copy-closure", "--to", host, *paths], env=env, timeout=60)


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def inner_init(host: SandboxHost) -> int:
    children = Path(f"/proc/{host.pid}/task/{host.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def processes_in_namespace(namespace: str) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and pid_namespace(int(p.name)) == namespace
    ]


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def commands_in_namespace(namespace: str) -> list[str]:
    commands = []
    for pid in processes_in_namespace(namespace):
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return commands


def processes_naming(directory: Path) -> list[tuple[int, str]]:
    """Live processes whose command line or working directory names `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not process_alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(directory) in cmdline or cwd.startswith(str(directory)):
            found.append((int(entry.name), cmdline))
    return found


def test_up_status_down(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(2)
    assert sandbox.names == ("h1", "h2")
    block = sandbox.blocks[0]
    assert [h.address for h in sandbox.hosts] == [f"127.77.{block}.1", f"127.77.{block}.2"]
    assert all(h.port == 2222 and h.running() for h in sandbox.hosts)
    assert load(sandbox.directory) == sandbox
    # `nixlift-sandbox up` writes the demo network's sandbox.json beside the state: no clash
    (sandbox.directory / "sandbox.json").write_text('{"hosts": ["h1", "h2"]}')
    assert load(sandbox.directory) == sandbox
    state = json.loads((sandbox.directory / STATE_FILE).read_text())
    assert [h["pid"] for h in state["hosts"]] == [h.pid for h in sandbox.hosts]
    claim = json.loads((CLAIMS_DIR / f"{block}.claim").read_text())
    assert claim["directory"] == str(sandbox.directory)

    listed = asyncio.run(status(sandbox.directory))
    assert [(s.name, s.address, s.pid, s.running) for s in listed] == [
        (h.name, h.address, h.pid, True) for h in sandbox.hosts
    ]
    assert all(s.current_system is None for s in listed)

    asyncio.run(down(sandbox.directory))
    assert not any(h.running() for h in sandbox.hosts)
    assert not any(s.running for s in asyncio.run(status(sandbox.directory)))
    assert BlockClaims().owned(sandbox.directory) == []  # (another sandbox may take it at once)
    assert (sandbox.directory / STATE_FILE).exists()  # files are kept without purge
    asyncio.run(down(sandbox.directory))  # idempotent


def test_up_is_idempotent_and_adds_and_removes_hosts(sandbox_factory: SandboxFactory) -> None:
    first = sandbox_factory(2)
    again = asyncio.run(up(first.directory, 2))
    assert again.hosts == first.hosts

    grown = asyncio.run(up(first.directory, 3))
    assert grown.hosts[:2] == first.hosts
    assert grown.blocks == first.blocks
    h3 = grown.host("h3")
    assert h3.running()
    assert h3.pid not in {h.pid for h in first.hosts}
    assert ssh(grown, "h3", "hostname").stdout == "h3\n"

    shrunk = asyncio.run(up(first.directory, 2))
    assert shrunk.hosts == first.hosts
    assert not h3.running()
    assert "Host h3" not in shrunk.ssh_config.read_text()


def test_hosts_are_separate_machines(sandbox2: Sandbox) -> None:
    out = ssh(
        sandbox2,
        "h1",
        "hostname; cat /etc/hostname; readlink /run/current-system; echo /nix:; ls -A /nix;"
        " ls -A /nix/var/nix; echo /root:; ls -A /root; nix-store --version",
    ).stdout
    # /nix holds nothing but the socket of the host's nix-daemon (see the users' tests)
    assert out.splitlines() == [
        "h1",
        "h1",
        "/nix:",
        "var",
        "daemon-socket",
        "/root:",
        "nix-store (Nix) 2.8.0",
    ]
    assert ssh(sandbox2, "h2", "hostname").stdout == "h2\n"

    # /nix: a first nix command initialises the host's own store, not the deployer's.
    ssh(sandbox2, "h1", "nix-store --init && ls /nix/store | wc -l")
    h1, h2 = sandbox2.hosts
    assert h1.path("/nix/var/nix/db").is_dir()
    assert (h1.root / "nix" / "var" / "nix" / "db").is_dir()
    assert not h2.path("/nix/var/nix/db").exists()

    # /etc (overlay), /run (tmpfs), the state dir and /root are per host.
    ssh(
        sandbox2,
        "h1",
        "echo etc > /etc/nixlift-probe; echo run > /run/nixlift-probe;"
        " echo state > /var/lib/standin/probe; echo home > /root/probe",
    )
    assert h1.read_text("/etc/nixlift-probe") == "etc\n"
    assert h1.read_text("/run/nixlift-probe") == "run\n"
    assert h1.read_text("/var/lib/standin/probe") == "state\n"
    assert (h1.root / "state" / "probe").read_text() == "state\n"
    assert (h1.root / "etc-upper" / "nixlift-probe").read_text() == "etc\n"
    assert h1.read_text("/root/probe") == "home\n"
    assert not Path("/etc/nixlift-probe").exists()
    assert not Path("/run/nixlift-probe").exists()
    for inside in ("/etc/nixlift-probe", "/run/nixlift-probe", "/var/lib/standin/probe"):
        assert h2.read_text(inside) is None
    assert ssh(sandbox2, "h2", "cat /etc/nixlift-probe", check=False).returncode != 0


def test_host_keys_are_verified(sandbox2: Sandbox, tmp_path: Path) -> None:
    config = sandbox2.ssh_config.read_text()
    assert "StrictHostKeyChecking yes" in config
    assert "StrictHostKeyChecking no" not in config
    assert ssh(sandbox2, "h1", "true").returncode == 0
    h1 = sandbox2.host("h1")
    by_address = run(
        ["ssh", "-F", str(sandbox2.ssh_config), "-p", "2222", f"root@{h1.address}", "hostname"]
    )
    assert by_address.stdout == "h1\n"

    # h2's key written down for h1's address: ssh must refuse to talk to h1.
    lines = sandbox2.known_hosts.read_text().splitlines()
    h2_key = lines[1].split()[1:3]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{h1.address}]:{h1.port} {' '.join(h2_key)}\n")
    argv = [
        "ssh",
        "-F",
        str(sandbox2.ssh_config),
        "-o",
        f"UserKnownHostsFile={wrong}",
        "h1",
        "true",
    ]
    refused = run(argv, check=False)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr

    # No entry at all: refused as well (never accepted on first use).
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    argv = [
        "ssh",
        "-F",
        str(sandbox2.ssh_config),
        "-o",
        f"UserKnownHostsFile={empty}",
        "h2",
        "true",
    ]
    assert run(argv, check=False).returncode == 255


def test_copy_closure_into_one_host(sandbox2: Sandbox, tmp_path: Path) -> None:
    path = add_to_store(tmp_path)
    h1, h2 = sandbox2.hosts
    assert not h1.path(path).exists()
    copy_closure(sandbox2, "h1", path)
    assert h1.path(path).read_text() == Path(path).read_text()
    assert not h2.path(path).exists()
    assert ssh(sandbox2, "h1", f"nix-store --check-validity {path}").returncode == 0
    assert ssh(sandbox2, "h2", f"nix-store --check-validity {path}", check=False).returncode != 0

    # /run/current-system names a path of the host's store: status reads it with readlink.
    ssh(sandbox2, "h1", f"ln -sfn {path} /run/current-system")
    assert h1.readlink("/run/current-system") == path
    assert h1.read_text("/run/current-system") == Path(path).read_text()
    current = {s.name: s.current_system for s in asyncio.run(status(sandbox2.directory))}
    assert current == {"h1": path, "h2": None}


def test_restarted_host_keeps_its_nix(sandbox2: Sandbox, tmp_path: Path) -> None:
    path = add_to_store(tmp_path)
    copy_closure(sandbox2, "h2", path)
    h1, h2 = sandbox2.hosts
    asyncio.run(h2.stop())
    assert not h2.running()
    assert h1.running()
    assert ssh(sandbox2, "h2", "true", check=False).returncode == 255  # connection refused

    again = asyncio.run(up(sandbox2.directory, 2))
    assert again.host("h1") == h1
    new_h2 = again.host("h2")
    assert new_h2.pid != h2.pid
    assert new_h2.address == h2.address
    assert new_h2.path(path).exists()
    assert ssh(again, "h2", f"nix-store --check-validity {path}").returncode == 0


def test_two_sandboxes_at_once_get_different_blocks(sandbox_factory: SandboxFactory) -> None:
    a = sandbox_factory(1)
    b = sandbox_factory(1)
    assert a.blocks != b.blocks
    assert a.hosts[0].address != b.hosts[0].address
    assert ssh(a, "h1", "hostname").stdout == "h1\n"
    assert ssh(b, "h1", "hostname").stdout == "h1\n"
    # each ssh_config reaches its own h1: a's key does not verify b's host
    argv = ["ssh", "-F", str(a.ssh_config), "-p", "2222", f"root@{b.hosts[0].address}", "true"]
    assert run(argv, check=False).returncode == 255


def test_concurrent_up_of_several_sandboxes(tmp_path: Path) -> None:
    directories = [tmp_path / f"s{i}" for i in range(3)]

    async def scenario() -> list[Sandbox]:
        try:
            return list(await asyncio.gather(*(up(d, 2) for d in directories)))
        finally:
            await asyncio.gather(*(down(d, purge=True) for d in directories))

    sandboxes = asyncio.run(scenario())
    assert len({s.blocks for s in sandboxes}) == 3


def test_down_leaves_no_process_behind(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(3)
    h1 = sandbox.host("h1")
    namespace = pid_namespace(inner_init(h1))
    assert namespace is not None

    async def scenario() -> tuple[list[tuple[int, int | None]], proc.Completed]:
        session = asyncio.create_task(
            proc.run(sandbox.ssh_argv("h1", "sleep 60"), check=False, timeout=30)
        )
        for _ in range(500):  # until the session's sleep runs inside h1
            if "sleep" in commands_in_namespace(namespace):
                break
            await asyncio.sleep(0.01)
        # h1's listener, its session's sshd and the session's sleep, at least
        assert len(commands_in_namespace(namespace)) >= 3
        pids = [h.pid for h in sandbox.hosts] + [inner_init(h) for h in sandbox.hosts]
        pids += processes_in_namespace(namespace)
        before = [(pid, process_start(pid)) for pid in pids]
        await down(sandbox.directory)
        return before, await session

    before, session = asyncio.run(scenario())
    assert session.returncode != 0  # the live session was cut
    survivors = [pid for pid, start in before if start is not None and process_alive(pid, start)]
    assert survivors == [], [
        (pid, Path(f"/proc/{pid}/stat").read_text(), Path(f"/proc/{pid}/cmdline").read_bytes())
        for pid in survivors
    ]
    assert processes_naming(sandbox.directory) == []
    # (not checked by namespace after down: a freed namespace's inode number is soon reused)


def test_busy_address_is_reported(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    address = f"127.77.{sandbox.blocks[0]}.2"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, 2222))
        listener.listen()
        with pytest.raises(SandboxError, match=f"{address}:2222 is already in use"):
            asyncio.run(up(sandbox.directory, 2))


def test_host_dying_at_start_is_reported_with_its_log(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    asyncio.run(h1.stop())
    (h1.root / "ssh_host_ed25519_key").write_text("not a key\n")
    with pytest.raises(SandboxError) as caught:
        asyncio.run(up(sandbox.directory, 1))
    message = caught.value.message
    assert "sandbox host h1 exited while starting" in message
    assert "no hostkeys available" in message
    assert caught.value.host == "h1"


def test_down_stops_hosts_the_state_file_lost(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(2)
    (sandbox.directory / STATE_FILE).unlink()
    asyncio.run(down(sandbox.directory))
    assert not any(h.running() for h in sandbox.hosts)


def test_changing_the_port_restarts_the_hosts(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    moved = asyncio.run(up(sandbox.directory, 1, port=2223))
    h1 = moved.host("h1")
    assert h1.port == 2223
    assert h1.pid != sandbox.hosts[0].pid
    assert not sandbox.hosts[0].running()
    assert f"[{h1.address}]:2223 " in moved.known_hosts.read_text()
    assert ssh(moved, "h1", "hostname").stdout == "h1\n"


def test_hosts_ask_no_binary_cache(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(1)
    conf = sb.host("h1").read_text("/etc/nix/nix.conf") or ""
    settings = [line.split("=", 1) for line in conf.splitlines() if "=" in line]
    last = {name.strip(): value.strip() for name, value in settings}  # (the last one counts)
    assert last["substituters"] == ""
    # builds as root: the deployer's nix and the host's must not share build users
    assert last["build-users-group"] == ""


# --- SSH access managed by the system, reboots, the stand-in bootloader -------------------------

STANDIN = standin_nixpkgs()

#: systems for h1: `good` authorizes the sandbox's key for root, `locked` drops it
SYSTEMS = {
    "good": "{ }",
    "locked": "{ lib, ... }: { users.users.root.openssh.authorizedKeys.keys = lib.mkForce [ ]; }",
    "hang": "{ standin.activation.hang = true; }",
    "second": '{ environment.etc.motd.text = "the second system"; }',
}


def build_systems(sandbox: Sandbox, tmp_path: Path, names: list[str]) -> dict[str, str]:
    """Stand-in systems (openssh on, the sandbox's key for root) plus SYSTEMS[name] each,
    built here and copied to h1. The key reaches Nix through a JSON file."""
    (tmp_path / "sandbox.json").write_text(
        json.dumps({"publicKey": sandbox.public_key, "nonce": uuid.uuid4().hex})
    )
    base = (
        f"{{ lib, ... }}: let sb = builtins.fromJSON (builtins.readFile {tmp_path}/sandbox.json);"
        ' in { services.openssh.enable = true; networking.hostName = "h1";'
        " users.users.root.openssh.authorizedKeys.keys = [ sb.publicKey ];"
        " environment.etc.nonce.text = sb.nonce; }"
    )
    systems = " ".join(
        f"(import <nixpkgs/nixos/lib/eval-config.nix> {{ modules = [ ({base}) ({SYSTEMS[n]}) ]; }})"
        ".config.system.build.toplevel"
        for n in names
    )
    argv = ["nix-build", "--no-out-link", "-I", f"nixpkgs={STANDIN}", "-E", f"[ {systems} ]"]
    paths = run(argv, env={"NIX_PATH": "", "NIX_CONFIG": "substituters ="}, timeout=120)
    built = paths.stdout.split()
    copy_closure(sandbox, "h1", *built)
    return dict(zip(names, built, strict=True))


@contextlib.contextmanager
def master(sandbox: Sandbox, host: str, tmp_path: Path) -> Iterator[Callable[..., proc.Completed]]:
    """An open SSH connection (ControlMaster) to `host`; yields `via(command)` running over it."""
    path = tmp_path / f"cm-{host}"
    opts = ["-o", f"ControlPath={path}"]
    run(
        [
            "ssh",
            "-F",
            str(sandbox.ssh_config),
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=60",
            *opts,
            host,
            "true",
        ],
        timeout=30,
    )

    def via(command: str, **kwargs: Any) -> proc.Completed:
        argv = ["ssh", "-F", str(sandbox.ssh_config), "-o", "ControlMaster=no", *opts, host]
        return run([*argv, command], timeout=30, **kwargs)

    try:
        yield via
    finally:
        exit_argv = ["ssh", "-F", str(sandbox.ssh_config), *opts, "-O", "exit", host]
        run(exit_argv, check=False, timeout=30)


def boots(host: SandboxHost) -> list[dict[str, Any]]:
    text = host.read_text("/var/lib/standin/boots.jsonl") or ""
    return [json.loads(line) for line in text.splitlines()]


def test_keys_come_only_from_etc_authorized_keys_d(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    assert sandbox.public_key.startswith("ssh-ed25519 ")
    assert sandbox.public_key == (sandbox.directory / "id_ed25519.pub").read_text().strip()
    assert json.loads((sandbox.directory / STATE_FILE).read_text())["public_key"] == (
        sandbox.public_key
    )
    seeded = h1.root / "etc-upper" / "ssh" / "authorized_keys.d" / "root"
    key_fields = sandbox.public_key.split()[:2]
    assert seeded.read_text().split()[:2] == key_fields
    assert seeded.stat().st_mode & 0o7777 == 0o444
    assert not (h1.root / "root" / ".ssh").exists()
    config = ssh(sandbox, "h1", "cat /etc/ssh/sshd_config").stdout
    assert "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u\n" in config

    # The key is not put back over what the host has (what its last activation wrote) ...
    asyncio.run(h1.stop())
    os.chmod(seeded, 0o644)
    seeded.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISomebodyElseSomebodyElseSomebo x\n")
    asyncio.run(up(sandbox.directory, 1))  # (it says that the host refuses the key)
    refused = ssh(sandbox, "h1", "true", check=False)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    # ... only where there is none (a .ssh/authorized_keys is no way in either)
    asyncio.run(down(sandbox.directory))
    seeded.unlink()
    asyncio.run(up(sandbox.directory, 1))
    assert ssh(sandbox, "h1", "cat /etc/ssh/authorized_keys.d/root").stdout.split()[:2] == (
        key_fields
    )


def test_reboot_ends_every_session_and_boots_afresh(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(2)
    h1, h2 = sandbox.hosts
    init = h1.init_pid()
    assert init is not None
    namespace = pid_namespace(init)
    assert namespace is not None
    first = ssh(sandbox, "h1", "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    assert first == h1.boot_id()
    kernel = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert first != kernel and h2.boot_id() not in (None, first)
    ssh(sandbox, "h1", "echo x > /run/probe; echo x > /etc/probe; echo x > /var/lib/standin/probe")
    h2_boot = h2.boot_id()

    def sleeping() -> list[tuple[int, int | None]]:
        return [
            (pid, process_start(pid))
            for pid in processes_in_namespace(namespace)
            if _comm(pid) == "sleep" and process_alive(pid)
        ]

    async def scenario() -> tuple[proc.Completed, proc.Completed, float, list[Any], str]:
        session = asyncio.create_task(
            proc.run(sandbox.ssh_argv("h1", "sleep 60"), check=False, timeout=30)
        )
        for _ in range(500):  # until the session's sleep runs inside h1
            if sleeping():
                break
            await asyncio.sleep(0.01)
        assert sleeping()
        before = [(p, process_start(p)) for p in processes_in_namespace(namespace) if p != init]
        begun = asyncio.get_running_loop().time()
        rebooting = await proc.run(sandbox.ssh_argv("h1", "reboot"), check=False, timeout=30)
        ended = await session
        took = asyncio.get_running_loop().time() - begun
        return rebooting, ended, took, before, await h1.wait_booted(after=first, timeout=10)

    rebooting, ended, took, before, second = asyncio.run(scenario())
    assert rebooting.returncode in (0, 255)  # the connection may be cut before `reboot` returns
    assert ended.returncode != 0 and took < 3  # (one SSH login, then ~1 s at most)
    # every process of the boot before (sshd, sessions) is gone; init stays
    assert [pid for pid, start in before if start and process_alive(pid, start)] == []
    assert second not in (first, kernel)
    assert ssh(sandbox, "h1", "cat /proc/sys/kernel/random/boot_id").stdout.strip() == second
    # the same host (unshare, init, address, /nix, /etc, state) with a fresh /run
    assert h1.running() and h1.init_pid() == init
    assert ssh(sandbox, "h1", "ls /run/probe", check=False).returncode != 0
    assert h1.read_text("/etc/probe") == "x\n"
    assert h1.read_text("/var/lib/standin/probe") == "x\n"
    assert h1.readlink("/run/current-system") is None  # no boot entry: no system
    assert [b["system"] for b in boots(h1)] == [None, None]
    assert [b["bootId"] for b in boots(h1)] == [first, second]
    assert h2.boot_id() == h2_boot

    # from outside, without waiting; then `sandbox down` leaves nothing behind
    asyncio.run(h1.reboot(wait=False))
    third = asyncio.run(h1.wait_booted(after=second))
    assert third not in (first, second)
    asyncio.run(down(sandbox.directory))
    assert not h1.running() and h1.boot_id() is None
    assert processes_naming(sandbox.directory) == []


def test_boot_entries_and_access_follow_the_system(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    systems = build_systems(sandbox, tmp_path, ["good", "locked"])
    good, locked = systems["good"], systems["locked"]
    ssh(sandbox, "h1", f"{good}/bin/switch-to-configuration switch")
    keys = "/etc/ssh/authorized_keys.d/root"
    assert (h1.read_text(keys) or "").split()[:2] == sandbox.public_key.split()[:2]
    assert h1.path(keys).stat().st_mode & 0o7777 == 0o444

    with master(sandbox, "h1", tmp_path) as via:
        via(f"{locked}/bin/switch-to-configuration test")
        assert h1.readlink("/run/current-system") == locked
        assert h1.read_text(keys) is None
        refused = ssh(sandbox, "h1", "true", check=False)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
        assert via("echo still here").stdout == "still here\n"  # open connections stay
        before = h1.boot_id()
        via("reboot", check=False)
        after = asyncio.run(h1.wait_booted(after=before))

    # the boot default (good: `test` did not make locked the default) is what runs now
    assert h1.readlink("/run/current-system") == good
    assert h1.readlink("/run/booted-system") == good
    assert ssh(sandbox, "h1", "cat /proc/sys/kernel/random/boot_id").stdout.strip() == after
    status = json.loads(ssh(sandbox, "h1", "standin-bootctl status").stdout)
    assert status == {
        "default": good,
        "oneshot": None,
        "booted": good,
        "current": good,
        "bootId": after,
    }

    # a one-shot entry: used for the next boot only
    out = ssh(sandbox, "h1", f"standin-bootctl set-oneshot {locked}").stdout
    assert out == f"boot-once: {locked}\n"
    assert json.loads(ssh(sandbox, "h1", "standin-bootctl status").stdout)["oneshot"] == locked
    asyncio.run(h1.reboot())
    assert h1.readlink("/run/current-system") == locked
    assert not (h1.root / "state" / "boot-once").exists()
    assert ssh(sandbox, "h1", "true", check=False).returncode == 255  # locked out
    asyncio.run(h1.reboot())  # (from outside)
    assert h1.readlink("/run/current-system") == good
    assert ssh(sandbox, "h1", "true").returncode == 0
    assert [(b["system"], b["entry"]) for b in boots(h1)] == [
        (None, None),
        (good, "default"),
        (locked, "oneshot"),
        (good, "default"),
    ]

    # set-default, clear-oneshot; a one-shot entry that is no system falls back to the default
    ssh(
        sandbox,
        "h1",
        f"standin-bootctl set-default {locked} && standin-bootctl set-oneshot {good}"
        " && standin-bootctl clear-oneshot",
    )
    assert (h1.root / "state" / "boot-default").read_text() == f"{locked}\n"
    assert not (h1.root / "state" / "boot-once").exists()
    ssh(sandbox, "h1", f"standin-bootctl set-default {good}")
    (h1.root / "state" / "boot-once").write_text("/nix/store/not-a-system\n")
    asyncio.run(h1.reboot())
    assert h1.readlink("/run/current-system") == good
    assert "one-shot boot entry /nix/store/not-a-system is not a system" in h1.log_file.read_text()


def test_bootctl_refuses_what_is_no_system(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    status = json.loads(ssh(sandbox, "h1", "standin-bootctl status").stdout)
    assert status == {
        "default": None,
        "oneshot": None,
        "booted": None,
        "current": None,
        "bootId": h1.boot_id(),
    }
    for command in ("set-oneshot /nix/store", "set-default /nonexistent"):
        refused = ssh(sandbox, "h1", f"standin-bootctl {command}", check=False)
        assert refused.returncode == 1 and "is not a system" in refused.stderr
    usage = ssh(sandbox, "h1", "standin-bootctl frobnicate", check=False)
    assert usage.returncode == 2 and "Usage: standin-bootctl" in usage.stderr
    assert not list((h1.root / "state").iterdir()) or not (h1.root / "state" / "boot-once").exists()
    # outside a sandbox host the tools refuse (here: in a pid namespace of its own, to be safe)
    tool = sandbox.directory / "bin" / "reboot"
    outside = run(["unshare", "--pid", "--fork", "--mount-proc", "sh", str(tool)], check=False)
    assert outside.returncode == 1 and "not inside a nixlift sandbox host" in outside.stderr


def test_bootctl_boots_generations_of_the_system_profile(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    """`bootctl` as systemd-boot's on NixOS: entries nixos-generation-N.conf are generations."""
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    systems = build_systems(sandbox, tmp_path, ["good", "second"])
    good, second = systems["good"], systems["second"]
    state = h1.root / "state"
    installed = ssh(sandbox, "h1", "bootctl is-installed")
    assert (installed.returncode, installed.stdout) == (0, "yes\n")
    profile = "/nix/var/nix/profiles/system"
    ssh(sandbox, "h1", f"nix-env -p {profile} --set {good} && nix-env -p {profile} --set {second}")
    assert h1.readlink(f"{profile}-1-link") == good
    assert h1.readlink(f"{profile}-2-link") == second

    # as systemd's bootctl: quiet when it succeeds; the records are the stand-in loader's
    done = ssh(
        sandbox,
        "h1",
        "bootctl set-default nixos-generation-2.conf"
        " && bootctl set-oneshot nixos-generation-1.conf",
    )
    assert done.stdout == ""
    assert (state / "boot-default").read_text() == f"{second}\n"
    assert (state / "boot-once").read_text() == f"{good}\n"

    # the one-shot entry boots once, then the default again
    asyncio.run(h1.reboot())
    assert h1.readlink("/run/booted-system") == good
    assert h1.readlink("/run/current-system") == good
    assert not (state / "boot-once").exists()
    asyncio.run(h1.reboot())
    assert h1.readlink("/run/current-system") == second
    assert [(b["system"], b["entry"]) for b in boots(h1)] == [
        (None, None),
        (good, "oneshot"),
        (second, "default"),
    ]

    # a generation that does not exist, a name that is no entry, a verb it does not know
    missing = ssh(sandbox, "h1", "bootctl set-oneshot nixos-generation-7.conf", check=False)
    assert missing.returncode == 1
    assert "no boot entry nixos-generation-7.conf" in missing.stderr
    assert f"{profile}-7-link" in missing.stderr
    for entry in ("nixos-generation-x.conf", "nixos-generation-1", "1", "''"):
        refused = ssh(sandbox, "h1", f"bootctl set-default {entry}", check=False)
        assert refused.returncode == 1 and "is not a boot entry of NixOS" in refused.stderr
    unknown = ssh(sandbox, "h1", "bootctl status", check=False)
    assert unknown.returncode == 1 and "is not emulated" in unknown.stderr
    assert not (state / "boot-once").exists()
    assert (state / "boot-default").read_text() == f"{second}\n"


def test_hanging_activation_until_reboot(sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    hang = build_systems(sandbox, tmp_path, ["hang"])["hang"]

    async def scenario() -> tuple[proc.Completed, list[str]]:
        activation = asyncio.create_task(
            proc.run(
                sandbox.ssh_argv("h1", f"{hang}/bin/switch-to-configuration switch"),
                check=False,
                timeout=30,
            )
        )
        begun: list[str] = []
        for _ in range(500):
            begun = (h1.read_text("/var/lib/standin/activations-begun") or "").splitlines()
            if begun:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        assert not activation.done()
        await h1.reboot()
        return await activation, begun

    activation, begun = asyncio.run(scenario())
    assert begun == [f"switch {hang}"]
    assert activation.returncode == 255  # cut by the reboot, never finished
    assert "hangs" in activation.stderr
    assert h1.read_text("/var/lib/standin/activations.jsonl") is None
    assert not (h1.root / "state" / "boot-default").exists()
    assert h1.readlink("/run/current-system") is None


def deploy_json(network: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`nixlift deploy NETWORK --json` as a user runs it; the per-host results keyed by name."""
    env = {**os.environ, "NIX_CONFIG": "substituters =\n"}
    done = subprocess.run(
        [sys.executable, "-m", "nixlift", "deploy", str(network), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.stdout, f"no JSON on stdout; stderr:\n{done.stderr}"
    return done, {h["name"]: h for h in json.loads(done.stdout)["hosts"]}


def test_deployed_network_keeps_access_across_reboots(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(1)
    h1 = sandbox.host("h1")
    # the demo network `nixlift-sandbox up` writes, which authorizes the sandbox's key
    net = write_network(
        sandbox.directory, list(sandbox.names), sandbox.ssh_config, public_key=sandbox.public_key
    )
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    system = hosts["h1"]["system"]
    # the system's activation wrote the keys (the sandbox's, from the network's defaults) of
    # root and of the users who are not root
    assert h1.read_text("/etc/ssh/authorized_keys.d/.managed") == "admin\ndeploy\nroot\n"
    for user in ("root", sandbox.deploy_user, sandbox.admin_user):
        keys = h1.read_text(f"/etc/ssh/authorized_keys.d/{user}") or ""
        assert keys.split()[:2] == sandbox.public_key.split()[:2]

    asyncio.run(h1.reboot())
    assert h1.readlink("/run/current-system") == system
    assert ssh(sandbox, "h1", "hostname").stdout == "h1\n"
    assert ssh(sandbox, "h1", "id -un", user=sandbox.deploy_user).stdout == "deploy\n"
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
