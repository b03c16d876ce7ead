"""The sandbox hosts' users who are not root (deploy, admin): logins, sudo, homes, nix-daemon."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from nixlift_testbed import ADMIN_PASSWORD, ADMIN_USER, DEPLOY_USER, Sandbox
from nixlift_testbed.fixtures import SandboxFactory

from .test_sandbox import add_to_store, copy_closure, run, ssh

pytestmark = pytest.mark.integration


def test_the_users_are_the_sandboxs(sandbox2: Sandbox) -> None:
    assert (sandbox2.deploy_user, sandbox2.admin_user) == (DEPLOY_USER, ADMIN_USER)
    assert (DEPLOY_USER, ADMIN_USER) == ("deploy", "admin")
    assert sandbox2.admin_password == ADMIN_PASSWORD == "nixlift-test-password"
    assert sandbox2.ssh_argv("h1", "true", user="deploy") == [
        "ssh",
        "-F",
        str(sandbox2.ssh_config),
        "-l",
        "deploy",
        "h1",
        "true",
    ]


def test_users_log_in_with_the_client_key_into_homes_of_their_own(sandbox2: Sandbox) -> None:
    h1, h2 = sandbox2.hosts
    for user in (sandbox2.deploy_user, sandbox2.admin_user):
        out = ssh(sandbox2, "h1", 'id -un; echo "$HOME"; pwd; echo mine > ~/probe', user=user)
        assert out.stdout.splitlines() == [user, f"/home/{user}", f"/home/{user}"]
        uid = int(ssh(sandbox2, "h1", "id -u", user=user).stdout)
        assert uid != 0
        home = h1.root / "home" / user
        assert (home / "probe").read_text() == "mine\n"
        assert home.stat().st_uid == uid and home.stat().st_mode & 0o777 == 0o700
        # /home is the host's own: not h2's, not this machine's
        assert h2.read_text(f"/home/{user}/probe") is None
        assert not Path(f"/home/{user}/probe").exists()
        keys = h1.read_text(f"/etc/ssh/authorized_keys.d/{user}") or ""
        assert keys.split()[:2] == sandbox2.public_key.split()[:2]
    # the accounts, the sudo rules and the host's name are the hosts' own /etc, not the real one
    assert "deploy ALL=(ALL) NOPASSWD: ALL" in (
        h1.read_text("/etc/sudoers.d/nixlift-sandbox") or ""
    )
    assert not Path("/etc/sudoers.d/nixlift-sandbox").exists()
    assert f"{h2.address} h2" in (h2.read_text("/etc/hosts") or "")
    # a locked account (`!` in /etc/shadow) is refused by sshd without PAM: not these two
    shadow = {
        line.split(":")[0]: line.split(":")[1]
        for line in (h1.read_text("/etc/shadow") or "").splitlines()
    }
    assert shadow["deploy"] == "*"
    assert shadow["admin"].startswith("$6$")


def test_sudo_without_and_with_a_password(sandbox_factory: SandboxFactory) -> None:
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (scripts/install.sh installs it)")
    sandbox = sandbox_factory(1)
    deploy, admin = sandbox.deploy_user, sandbox.admin_user

    root = ssh(sandbox, "h1", "sudo -n id -u", user=deploy)
    assert root.stdout == "0\n"
    assert root.stderr == ""  # (no "unable to resolve host": the host's /etc/hosts names it)

    refused = ssh(sandbox, "h1", "sudo -n true", user=admin, check=False)
    assert refused.returncode == 1 and "a password is required" in refused.stderr
    wrong = ssh(sandbox, "h1", "echo wrong | sudo -S -p '' true", user=admin, check=False)
    assert wrong.returncode == 1 and "incorrect password" in wrong.stderr
    # the password on stdin, never in argv: another test may be watching every process's argv
    # for it (tests/integration/test_nonroot.py), and this one may run at the same time
    right = ssh(
        sandbox,
        "h1",
        "sudo -S -p '' id -u",
        user=admin,
        stdin=f"{sandbox.admin_password}\n".encode(),
    )
    assert right.stdout == "0\n"
    # nixlift's default privilegeEscalationCommand, as deploy
    assert ssh(sandbox, "h1", "sudo -H -- sh -c 'echo $HOME'", user=deploy).stdout == "/root\n"


def build_unsigned() -> str:
    """A new input-addressed path (built here, so signed by no one); a uuid makes it new."""
    nonce = uuid.uuid4().hex  # (hex digits: nothing to quote in the Nix text)
    expr = (
        'derivation { name = "unsigned"; system = builtins.currentSystem;'
        f' builder = "/bin/sh"; args = [ "-c" "echo {nonce} > $out" ]; }}'
    )
    return run(["nix-build", "--no-out-link", "-E", expr], timeout=60).stdout.strip()


def test_users_reach_the_hosts_store_through_its_nix_daemon(
    sandbox2: Sandbox, tmp_path: Path
) -> None:
    h1 = sandbox2.host("h1")
    path = add_to_store(tmp_path)
    copy_closure(sandbox2, "h1", path)
    expected = run(["nix-store", "-q", "--hash", path]).stdout
    deploy = sandbox2.deploy_user
    assert ssh(sandbox2, "h1", f"nix-store -q --hash {path}", user=deploy).stdout == expected
    assert ssh(sandbox2, "h1", f"nix-store --check-validity {path}", user=deploy).returncode == 0
    other = ssh(sandbox2, "h2", f"nix-store --check-validity {path}", user=deploy, check=False)
    assert other.returncode != 0  # h2's daemon serves h2's store
    daemons = ssh(sandbox2, "h1", "ps -o user=,args= -C nix-daemon").stdout.splitlines()
    assert daemons and all(line.split() == ["root", "nix-daemon"] for line in daemons)
    assert h1.path("/nix/var/nix/daemon-socket/socket").is_socket()

    # not a trusted user: what it copies in must be signed (unless content-addressed, as
    # nix-store --add's paths are: so a built one)
    unsigned = build_unsigned()
    argv = ["nix-copy-closure", "--to", f"{deploy}@h1", unsigned]
    refused = run(argv, env={"NIX_SSHOPTS": sandbox2.nix_sshopts}, timeout=60, check=False)
    assert refused.returncode != 0 and "lacks a valid signature" in refused.stderr
    assert not h1.path(unsigned).exists()

    # a new daemon at every boot
    asyncio.run(h1.reboot())
    assert ssh(sandbox2, "h1", f"nix-store -q --hash {path}", user=deploy).stdout == expected
    log = h1.log_file.read_text()
    assert "accepted connection from pid" in log and "user deploy" in log
