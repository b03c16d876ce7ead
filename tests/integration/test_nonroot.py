"""Deploying as a user who is not root: sudo without a password, sudo with one (asked once on a
terminal), a sudo that wants one nobody gave, a wrong one; and a lock no such user can take."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SandboxFactory
from netkit import activations, current_system, deploy_json, err, hint, nixlift, write_network
from procwatch import watching_processes

from nixlift_testbed import ADMIN_PASSWORD, Sandbox

pytestmark = pytest.mark.integration

BODY = """
  h1 = { ... }: {
    deployment.targetUser = "USER";
    environment.etc."who".text = "deployed as USER";
    deployment.keys.token = { text = "a-token-for-USER"; user = "nobody"; permissions = "0400"; };
  };
"""


def network(tmp: Path, sb: Sandbox, user: str) -> Path:
    return write_network(tmp / user, sb, BODY.replace("USER", user))


def test_a_user_with_passwordless_sudo_deploys_copies_and_uploads_keys(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = network(tmp_path, sb, "deploy")
    done, hosts = deploy_json(net)
    assert done.returncode == 0, done.stderr
    h1 = sb.host("h1")
    assert current_system(h1) == hosts["h1"]["system"]
    assert h1.read_text("/run/keys/token") == "a-token-for-deploy"
    st = h1.path("/run/keys/token").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o400, 65534)
    # the copy went through sudo: the paths belong to the host's store, added by root
    assert h1.path(hosts["h1"]["system"]).exists()
    again, hosts = deploy_json(net)
    assert again.returncode == 0, again.stderr
    assert hosts["h1"]["keys"]["unchanged"] == ["token"]
    listed = nixlift("list-generations", net)
    assert listed.returncode == 0 and "(current, running)" in listed.stdout


def _run_on_a_terminal(
    argv: list[str], answer: str | None, timeout: float = 120
) -> tuple[int, str]:
    """Run argv with a terminal of its own; type `answer` at the password prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.execvpe(argv[0], argv, {**os.environ, "NIX_CONFIG": "substituters =\n"})
    out = b""
    answered = answer is None
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
        if not answered and b"sudo password for" in out:
            assert answer is not None
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_ask_sudo_password_asks_once_and_the_password_goes_nowhere_else(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(2)
    net = write_network(
        tmp_path,
        sb,
        BODY.replace("USER", "admin") + BODY.replace("USER", "admin").replace("h1 =", "h2 ="),
    )
    with watching_processes() as seen:
        code, out = _run_on_a_terminal(
            [
                sys.executable,
                "-m",
                "nixlift",
                "deploy",
                str(net),
                "--ask-sudo-password",
                "--progress",
                "plain",
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            ADMIN_PASSWORD,
        )
    assert code == 0, out
    assert out.count("sudo password for admin") == 1  # one prompt for the whole fleet
    for name in ("h1", "h2"):
        h = sb.host(name)
        assert h.read_text(f"{current_system(h)}/etc/who") == "deployed as admin"
        assert h.read_text("/run/keys/token") == "a-token-for-admin"
    assert not any(ADMIN_PASSWORD.encode() in s for s in seen)
    assert ADMIN_PASSWORD not in out  # (the prompt does not echo it)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert ADMIN_PASSWORD not in logs
    history = nixlift("history", net, "--ask-sudo-password")  # no terminal here
    assert history.returncode == 2 and "needs a terminal" in history.stderr


def test_a_wrong_password_is_one_clear_error_per_host_and_changes_nothing(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = network(tmp_path, sb, "admin")
    code, out = _run_on_a_terminal(
        [
            sys.executable,
            "-m",
            "nixlift",
            "deploy",
            str(net),
            "--ask-sudo-password",
            "--progress",
            "plain",
        ],
        "not-the-password",
    )
    assert code == 1, out
    assert "sudo did not accept the password" in out and "run again" in out
    h1 = sb.host("h1")
    assert activations(h1) == [] and current_system(h1) is None
    assert not h1.path("/run/keys/token").exists()


def test_sudo_that_wants_a_password_fails_at_once_naming_the_flag(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = network(tmp_path, sb, "admin")
    started = time.monotonic()
    done, hosts = deploy_json(net)
    assert done.returncode == 1
    assert time.monotonic() - started < 30  # no prompt waited for
    assert "sudo wants a password" in err(hosts["h1"])
    assert "--ask-sudo-password" in hint(hosts["h1"])
    assert activations(sb.host("h1")) == []


def test_no_unprivileged_user_can_take_or_read_the_lock(
    sandbox_factory: SandboxFactory, tmp_path: Path
) -> None:
    sb = sandbox_factory(1)
    net = write_network(tmp_path, sb, "  h1 = { ... }: { };")
    done, _ = deploy_json(net)  # /run/nixlift exists from now on
    assert done.returncode == 0, done.stderr
    # `deploy` tries to hold the lock (flock works on a read-only descriptor) for 60 s
    holder = subprocess.Popen(
        sb.ssh_argv("deploy@h1", "exec 9</run/nixlift/lock && flock 9 && sleep 60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = holder.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        holder.kill()
        pytest.fail("an unprivileged user holds the host's lock")
    assert holder.returncode != 0 and "Permission denied" in err
    again, hosts = deploy_json(net)
    assert again.returncode == 0, again.stderr
    assert hosts["h1"]["status"] == "ok"
    run = sb.host("h1").path("/run/nixlift")
    assert stat.S_IMODE(run.stat().st_mode) == 0o700 and run.stat().st_uid == 0
