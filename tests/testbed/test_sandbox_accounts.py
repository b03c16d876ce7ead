"""The sandbox hosts' accounts, sudo rules and /etc/hosts as texts and files (no hosts)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nixlift_testbed.keys import _install_authorized_keys, authorized_keys_line
from nixlift_testbed.render import render_etc_hosts
from nixlift_testbed.users import (
    ADMIN_PASSWORD,
    ADMIN_PASSWORD_HASH,
    FIRST_ID,
    LOGINS,
    SUDOERS_FILE,
    USERS,
    add_accounts,
    install_users,
    render_sudoers,
)

PASSWD = """root:x:0:0:root:/root:/bin/bash
nixbld1:x:1500:30000:Nix build user 1:/var/empty:/usr/sbin/nologin
someone:x:1502:1502::/home/someone:/bin/sh
"""
GROUP = """root:x:0:
shadow:x:42:
nixbld:x:30000:nixbld1
someone:x:1502:
twelve:x:1501:
"""
SHADOW = """root:*:19000:0:99999:7:::
nixbld1:!:19000::::::
someone:!:19000:0:99999:7:::
"""


def test_accounts_are_added_with_ids_free_as_uid_and_gid() -> None:
    acc = add_accounts(PASSWD, GROUP, SHADOW, shell="/bin/bash")
    # 1500 is a uid, 1501 a gid, 1502 both: the first free ids from FIRST_ID are 1503, 1504
    assert FIRST_ID == 1500
    assert acc.ids == (("deploy", 1503), ("admin", 1504))
    assert acc.passwd == PASSWD + (
        "deploy:x:1503:1503:nixlift sandbox user with sudo without a password:"
        "/home/deploy:/bin/bash\n"
        "admin:x:1504:1504:nixlift sandbox user with sudo with a password:/home/admin:/bin/bash\n"
    )
    assert acc.group == GROUP + "deploy:x:1503:\nadmin:x:1504:\n"
    # unlocked ("*", not "!"), no password aging: 9 fields
    assert acc.shadow == SHADOW + "deploy:*:::::::\n" + f"admin:{ADMIN_PASSWORD_HASH}:::::::\n"
    assert all(len(line.split(":")) == 9 for line in acc.shadow.splitlines())


def test_adding_again_keeps_the_ids_and_replaces_the_lines() -> None:
    first = add_accounts(PASSWD, GROUP, SHADOW, shell="/bin/bash")
    again = add_accounts(first.passwd, first.group, first.shadow, shell="/bin/bash")
    assert again == first
    # a user of the same name in the real /etc: replaced (its uid kept), never doubled
    real = PASSWD + "deploy:x:1600:1600:someone else:/srv:/bin/false\n"
    acc = add_accounts(real, GROUP, SHADOW + "deploy:!:19000::::::\n", shell="/bin/sh")
    assert dict(acc.ids)["deploy"] == 1600
    assert [line for line in acc.passwd.splitlines() if line.startswith("deploy:")] == [
        "deploy:x:1600:1600:nixlift sandbox user with sudo without a password:/home/deploy:/bin/sh"
    ]
    assert [line for line in acc.shadow.splitlines() if line.startswith("deploy:")] == [
        "deploy:*:::::::"
    ]


def test_sudo_rules_and_logins() -> None:
    assert [u.name for u in USERS] == ["deploy", "admin"]
    assert LOGINS == ("root", "deploy", "admin")
    assert SUDOERS_FILE == "nixlift-sandbox"
    lines = render_sudoers().splitlines()
    assert lines[1:] == ["deploy ALL=(ALL) NOPASSWD: ALL", "admin ALL=(ALL) ALL"]
    assert lines[0].startswith("#")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_admin_password_hash_is_the_passwords() -> None:
    salt = ADMIN_PASSWORD_HASH.split("$")[2]
    argv = ["openssl", "passwd", "-6", "-salt", salt, "-stdin"]
    made = subprocess.run(
        argv, input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, check=True
    )
    assert made.stdout.strip() == ADMIN_PASSWORD_HASH


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the homes their owners: needs root")
def test_install_users_into_a_hosts_etc_and_home(tmp_path: Path) -> None:
    real = tmp_path / "real-etc"
    real.mkdir()
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("shadow", SHADOW)):
        (real / name).write_text(text)
    os.chmod(real / "shadow", 0o640)
    os.chown(real / "shadow", 0, 42)
    etc, home = tmp_path / "etc-upper", tmp_path / "home"
    etc.mkdir()
    acc = install_users(etc, home, real_etc=real)
    assert (etc / "passwd").read_text() == acc.passwd
    info = (etc / "shadow").stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 0, 42)  # as the real one
    sudoers = etc / "sudoers.d" / SUDOERS_FILE
    assert sudoers.read_text() == render_sudoers()
    assert sudoers.stat().st_mode & 0o777 == 0o440
    for name, n in acc.ids:
        info = (home / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (n, n, 0o700)
    # the host's own files count from then on: a change made in the host stays
    (etc / "passwd").write_text(acc.passwd + "added:x:1700:1700::/:/bin/sh\n")
    again = install_users(etc, home, real_etc=real)
    assert "added:x:1700" in again.passwd and again.ids == acc.ids


def test_authorized_keys_are_seeded_for_every_login(tmp_path: Path) -> None:
    client = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIClientClientClientClientClientClientClie c"
    etc = tmp_path / "etc-upper"
    keys = etc / "ssh" / "authorized_keys.d"
    keys.mkdir(parents=True)
    (keys / "deploy").write_text("ssh-ed25519 AAAAOther what the system wrote\n")
    _install_authorized_keys(etc, client, LOGINS)
    assert (keys / "root").read_text() == authorized_keys_line(client)
    assert (keys / "admin").read_text() == authorized_keys_line(client)
    assert (keys / "deploy").read_text() == "ssh-ed25519 AAAAOther what the system wrote\n"


def test_etc_hosts_names_the_host() -> None:
    base = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
    text = render_etc_hosts(base, "127.77.3.1", "h1")
    assert text == base + "127.77.3.1 h1  # nixlift sandbox host\n"
    # written again (say, at another address): one line for the host, the new one
    assert render_etc_hosts(text, "127.77.4.1", "h1") == (
        base + "127.77.4.1 h1  # nixlift sandbox host\n"
    )
