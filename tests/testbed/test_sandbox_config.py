"""Sandbox logic without processes: config texts, addresses, block claims, state files."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nixlift_testbed import Sandbox, SandboxError, SandboxHost, default_directory, load, up
from nixlift_testbed.hosts import (
    HOSTS_PER_BLOCK,
    MAX_HOSTS,
    STATE_FILE,
    BlockClaims,
    address_block,
    blocks_needed,
    host_address,
    host_index,
    host_name,
    known_hosts_line,
    process_start,
    render_known_hosts,
    render_ssh_config,
    render_sshd_config,
    ssh_config_path,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake h1"


def host(index: int, block: int = 7, port: int = 2222) -> SandboxHost:
    return SandboxHost(
        name=host_name(index),
        address=host_address([block], index),
        port=port,
        pid=1000 + index,
        root=Path(f"/tmp/sb/hosts/h{index}"),
    )


# --- sshd_config, ssh_config, known_hosts ----------------------------------------------------


def test_sshd_config() -> None:
    lines = render_sshd_config("127.77.7.3", 2222).splitlines()
    for expected in [
        "ListenAddress 127.77.7.3:2222",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u",
        "KexAlgorithms curve25519-sha256",
        "MaxSessions 64",
        "MaxStartups 100:30:200",
    ]:
        assert expected in lines
    assert not [line for line in lines if line.startswith("Include")]
    assert not [line for line in lines if ".ssh/authorized_keys" in line]


def test_first_authorized_key_only_where_there_is_none(tmp_path: Path) -> None:
    from nixlift_testbed.hosts import _authorizes, _install_authorized_keys, authorized_keys_line

    etc = tmp_path / "etc-upper"
    (etc / "ssh").mkdir(parents=True)
    client = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClientClientClientClientClientClientClie c"
    line = authorized_keys_line(client)
    assert line == " ".join(client.split()[:2]) + " nixlift-sandbox\n"
    assert not _authorizes(tmp_path, client)
    _install_authorized_keys(etc, client)
    root = etc / "ssh" / "authorized_keys.d" / "root"
    assert root.read_text() == line
    assert root.stat().st_mode & 0o7777 == 0o444
    assert (etc / "ssh" / "authorized_keys.d").stat().st_mode & 0o777 == 0o755
    assert _authorizes(tmp_path, client)
    os.chmod(root, 0o644)
    root.write_text("ssh-ed25519 AAAAOther other\n")  # what the host's activation wrote
    _install_authorized_keys(etc, client)
    assert root.read_text() == "ssh-ed25519 AAAAOther other\n"
    assert not _authorizes(tmp_path, client)
    with pytest.raises(SandboxError, match="not an OpenSSH public key"):
        authorized_keys_line("garbage")


def test_host_tools_are_copies_of_init_sh(tmp_path: Path) -> None:
    from nixlift_testbed.hosts import HOST_TOOLS, _install_init_script, _Layout

    layout = _Layout(tmp_path)
    _install_init_script(layout)
    script = layout.init_script.read_text()
    assert script.startswith("# Init and tools of the nixlift sandbox hosts.")
    for tool in HOST_TOOLS:
        assert (tmp_path / "bin" / tool).read_text() == script
        assert os.access(tmp_path / "bin" / tool, os.X_OK)


def test_bootctl_is_systemd_boots_command_on_the_hosts(tmp_path: Path) -> None:
    """The hosts' `bootctl` (a name init.sh answers to) knows NixOS' entry names; outside a
    host it only shows its usage."""
    from nixlift_testbed.hosts import HOST_TOOLS, _install_init_script, _Layout

    assert "bootctl" in HOST_TOOLS and "standin-bootctl" in HOST_TOOLS
    layout = _Layout(tmp_path)
    _install_init_script(layout)
    script = layout.init_script.read_text()
    assert '    bootctl) systemd_bootctl "$@" ;;\n' in script
    assert "link=/nix/var/nix/profiles/system-$n-link\n" in script
    bootctl = str(tmp_path / "bin" / "bootctl")
    usage = subprocess.run(["sh", bootctl, "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0
    assert usage.stdout.startswith("Usage: bootctl is-installed | set-default ENTRY |")
    assert "nixos-generation-N.conf" in usage.stdout
    unknown = subprocess.run(["sh", bootctl, "list"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "'list' is not emulated" in unknown.stderr
    outside = subprocess.run(
        ["sh", bootctl, "is-installed"], capture_output=True, text=True, check=False
    )
    assert outside.returncode == 1 and "not inside a nixlift sandbox host" in outside.stderr


def test_ssh_config_verifies_host_keys() -> None:
    text = render_ssh_config(
        [host(1), host(2)],
        identity=Path("/s/id_ed25519"),
        known_hosts=Path("/s/known_hosts"),
    )
    blocks = text.split("\n\n")[1:]
    assert [b.splitlines()[0] for b in blocks[:2]] == ["Host h1", "Host h2"]
    assert blocks[2].splitlines()[1] == "Host *"  # the catch-all comes last
    assert len(blocks) == 3
    h1 = blocks[0].splitlines()
    assert "  HostName 127.77.7.1" in h1
    assert "  Port 2222" in h1
    for block in blocks:
        options = [line.strip() for line in block.splitlines()]
        assert "User root" in options
        assert 'IdentityFile "/s/id_ed25519"' in options
        assert "IdentitiesOnly yes" in options
        assert 'UserKnownHostsFile "/s/known_hosts"' in options
        assert "GlobalKnownHostsFile /dev/null" in options
        assert "StrictHostKeyChecking yes" in options
        assert "BatchMode yes" in options
    assert "StrictHostKeyChecking no" not in text
    assert "accept-new" not in text


def test_ssh_config_paths_are_quoted_and_escaped() -> None:
    assert ssh_config_path(Path("/a b/100%/key")) == '"/a b/100%%/key"'
    for bad in ['/a"b', "/a\\b", "/a\nb"]:
        with pytest.raises(SandboxError):
            ssh_config_path(Path(bad))


def test_known_hosts() -> None:
    assert known_hosts_line("127.77.7.1", 2222, KEY, "h1") == (
        "[127.77.7.1]:2222 " + " ".join(KEY.split()[:2]) + " h1"
    )
    assert known_hosts_line("127.77.7.1", 22, KEY).startswith("127.77.7.1 ssh-ed25519 ")
    text = render_known_hosts([(host(1), KEY), (host(2), KEY)])
    assert [line.split()[0] for line in text.splitlines()] == [
        "[127.77.7.1]:2222",
        "[127.77.7.2]:2222",
    ]
    with pytest.raises(SandboxError):
        known_hosts_line("127.77.7.1", 2222, "garbage")


# --- names and addresses -----------------------------------------------------------------------


def test_addresses_and_blocks() -> None:
    assert host_name(3) == "h3"
    assert host_index("h3") == 3
    assert host_index("h03") is None
    assert host_index("x3") is None
    assert blocks_needed(1) == 1
    assert blocks_needed(HOSTS_PER_BLOCK) == 1
    assert blocks_needed(HOSTS_PER_BLOCK + 1) == 2
    assert host_address([9], 1) == "127.77.9.1"
    assert host_address([9], 250) == "127.77.9.250"
    assert host_address([9, 4], 251) == "127.77.4.1"
    assert host_address([9, 4], 500) == "127.77.4.250"
    assert address_block("127.77.9.1") == 9
    assert address_block("127.0.0.1") is None


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NIXLIFT_SANDBOX_DIR", str(tmp_path / "explicit"))
    assert default_directory() == tmp_path / "explicit"
    monkeypatch.delenv("NIXLIFT_SANDBOX_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_directory() == tmp_path / "state" / "nixlift" / "sandbox"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_directory() == tmp_path / "home" / ".local/state/nixlift/sandbox"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_directory() == tmp_path / "home" / ".local/state/nixlift/sandbox"


# --- block claims ------------------------------------------------------------------------------


class World:
    """Fakes for BlockClaims: which sandboxes run hosts in which block, which pids live."""

    def __init__(self) -> None:
        self.running: set[tuple[Path, int]] = set()
        self.dead_pids: set[int] = set()
        self.now = 1_000_000.0

    def claims(self, directory: Path, blocks: range = range(1, 6)) -> BlockClaims:
        return BlockClaims(
            directory,
            hosts_running=lambda d, b: (d, b) in self.running,
            process_alive=lambda pid, start: pid not in self.dead_pids,
            clock=lambda: self.now,
            grace=60.0,
            blocks=blocks,
        )


A, B, C = Path("/sandboxes/a"), Path("/sandboxes/b"), Path("/sandboxes/c")


def claim_of(claims: BlockClaims, block: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(claims.path(block).read_text())
    return data


def age(claims: BlockClaims, block: int, seconds: float, now: float) -> None:
    os.utime(claims.path(block), (now - seconds, now - seconds))


def test_claims_take_the_lowest_free_blocks(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path / "claims")
    assert claims.acquire(A, 1) == (1,)
    assert claims.acquire(B, 2) == (2, 3)
    assert claim_of(claims, 1) == {
        "directory": str(A),
        "pid": os.getpid(),
        "start": process_start(os.getpid()),
    }
    assert claims.owned(B) == [2, 3]
    # asking again keeps what one has, in the same order
    assert claims.acquire(B, 2, prefer=(2, 3)) == (2, 3)
    assert claims.acquire(B, 3, prefer=(3, 2)) == (3, 2, 4)


def test_claims_of_live_sandboxes_are_kept(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    claims.acquire(A, 1)
    # old, claimer gone, but a host runs: not stale
    age(claims, 1, 3600, world.now)
    world.dead_pids.add(os.getpid())
    world.running.add((A, 1))
    assert claims.acquire(B, 1) == (2,)
    assert claim_of(claims, 1)["directory"] == str(A)


def test_young_claim_of_a_live_claimer_is_kept_while_hosts_start(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    claims.acquire(A, 1)
    age(claims, 1, 10, world.now)  # no host runs yet, the claimer does
    assert claims.acquire(B, 1) == (2,)


@pytest.mark.parametrize(
    ("seconds", "claimer_dead"),
    [(10, True), (3600, False), (3600, True)],
    ids=["claimer-gone", "old-claim", "both"],
)
def test_stale_claims_are_taken_over(tmp_path: Path, seconds: float, claimer_dead: bool) -> None:
    world = World()
    claims = world.claims(tmp_path)
    claims.acquire(A, 1)
    age(claims, 1, seconds, world.now)
    if claimer_dead:
        world.dead_pids.add(os.getpid())
    assert claims.acquire(B, 1) == (1,)
    assert claim_of(claims, 1)["directory"] == str(B)
    assert claims.owned(A) == []


def test_unreadable_claim_is_stale_only_when_old(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    claims.path(1).write_text("{half a cla")
    age(claims, 1, 5, world.now)
    assert claims.acquire(A, 1) == (2,)
    age(claims, 1, 3600, world.now)
    assert claims.acquire(B, 1) == (1,)


def test_claim_files_are_exclusive(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    claims.acquire(A, 1)
    # a claim created by someone else between our read and our create is not overwritten
    assert not claims._create(1, B)
    assert claim_of(claims, 1)["directory"] == str(A)


def test_release_gives_back_only_own_blocks(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    claims.acquire(A, 2)
    claims.acquire(B, 1)
    claims.release(A, [1, 3])
    assert claims.owned(A) == [2]
    assert claims.owned(B) == [3]
    claims.release(A)
    assert claims.owned(A) == []
    assert claims.owned(B) == [3]


def test_no_free_block(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path, blocks=range(1, 4))
    claims.acquire(A, 2)
    with pytest.raises(SandboxError, match="no free sandbox address block") as caught:
        claims.acquire(B, 2)
    assert "nixlift-sandbox down" in caught.value.hint
    assert claims.owned(B) == []  # what it took on the way is given back
    assert claims.acquire(C, 1) == (3,)


def test_blocks_held_from_before_are_reused_and_extra_ones_released(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    assert claims.acquire(A, 3) == (1, 2, 3)
    # the state (and so `prefer`) was lost: A's own claims are not stale to A
    assert claims.acquire(A, 1) == (1,)
    assert claims.owned(A) == [1]


def test_a_lost_preferred_block_is_replaced_in_place(tmp_path: Path) -> None:
    world = World()
    claims = world.claims(tmp_path)
    assert claims.acquire(A, 2) == (1, 2)
    claims.path(1).unlink()
    claims.acquire(B, 1)  # B takes block 1 meanwhile
    assert claims.acquire(A, 2, prefer=(1, 2)) == (3, 2)


# --- state file and values ---------------------------------------------------------------------


def test_load_without_state_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as caught:
        load(tmp_path / "nothing")
    assert "nixlift-sandbox up N" in caught.value.hint


def test_state_round_trip(tmp_path: Path) -> None:
    from nixlift_testbed.hosts import _state_json

    sandbox = Sandbox(
        directory=tmp_path,
        hosts=(host(1), host(2)),
        ssh_config=tmp_path / "ssh_config",
        known_hosts=tmp_path / "known_hosts",
        identity=tmp_path / "id_ed25519",
        port=2222,
        blocks=(7,),
    )
    (tmp_path / STATE_FILE).write_text(_state_json(sandbox))
    assert load(tmp_path) == sandbox
    keyed = dataclasses.replace(sandbox, public_key=KEY)
    (tmp_path / STATE_FILE).write_text(_state_json(keyed))
    assert json.loads((tmp_path / STATE_FILE).read_text())["public_key"] == KEY
    assert load(tmp_path) == keyed
    # a state file from before public_key: the key is read from id_ed25519.pub
    (tmp_path / "id_ed25519.pub").write_text(KEY + "\n")
    (tmp_path / STATE_FILE).write_text(_state_json(sandbox))
    assert load(tmp_path) == keyed
    assert sandbox.host("h2") == host(2)
    with pytest.raises(SandboxError, match="no host named 'h9'"):
        sandbox.host("h9")
    assert sandbox.nix_sshopts == f"-F {tmp_path}/ssh_config"
    assert sandbox.ssh_argv("h1", "true") == ["ssh", "-F", f"{tmp_path}/ssh_config", "h1", "true"]

    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(SandboxError, match="is not a nixlift sandbox state file"):
        load(tmp_path)


def test_up_refuses_bad_counts(tmp_path: Path) -> None:
    for count in (0, MAX_HOSTS + 1):
        with pytest.raises(SandboxError, match="a sandbox has 1 to"):
            asyncio.run(up(tmp_path, count))


def test_host_paths_and_links(tmp_path: Path) -> None:
    me = SandboxHost(name="h1", address="127.77.1.1", pid=os.getpid(), root=tmp_path)
    assert me.path("/nix/store/x") == Path(f"/proc/{os.getpid()}/root/nix/store/x")
    with pytest.raises(ValueError, match="not an absolute path"):
        me.path("relative")
    assert not me.running()  # not an unshare of a sandbox host
    assert me.readlink("/anything") is None
    assert me.boot_id() is None and me.init_pid() is None
    with pytest.raises(SandboxError, match="is not running"):
        asyncio.run(me.reboot())
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_text("x")
    (tmp_path / "rel").symlink_to("dir/../dir/file")
    (tmp_path / "abs").symlink_to(tmp_path / "rel")
    assert me.resolve(str(tmp_path / "abs")) == str(tmp_path / "dir" / "file")
    (tmp_path / "loop").symlink_to("loop")
    assert me.resolve(str(tmp_path / "loop")) is None


def test_up_needs_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="only be started as root") as caught:
        asyncio.run(up(tmp_path, 1))
    assert "sudo" in caught.value.hint
    assert not (tmp_path / "hosts").exists()


def test_missing_sshd_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from nixlift_testbed.hosts import _find_sshd

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(SandboxError, match="sshd") as caught:
        _find_sshd()
    assert "openssh-server" in caught.value.hint
