"""The sandbox hosts' users besides root, for deploys as a user who is not root.

Every host has two, in its own /etc (the overlay's upper layer) and with its own /home:

    deploy   `sudo` without a password      (sudoers: `deploy ALL=(ALL) NOPASSWD: ALL`)
    admin    `sudo` with ADMIN_PASSWORD      (sudoers: `admin ALL=(ALL) ALL`)

Both log in with the sandbox's client key (from /etc/ssh/authorized_keys.d/USER, as root does);
neither is a trusted Nix user: they reach the host's store through its nix-daemon.

The account texts are made here (pure); `install_users` writes them while the host is stopped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixlift_testbed.files import _host_etc_text, _write_if_changed

#: the user with passwordless sudo
DEPLOY_USER = "deploy"
#: the user whose sudo asks for ADMIN_PASSWORD
ADMIN_USER = "admin"
#: admin's password (a test password: it guards nothing but the sandbox hosts)
ADMIN_PASSWORD = "nixlift-test-password"  # noqa: S105 (a fixed test password, on purpose)
#: `openssl passwd -6 -salt nixliftsandbox nixlift-test-password`: a fixed salt, so the shadow
#: file is the same text at every start (and is only rewritten when it changed)
ADMIN_PASSWORD_HASH = (
    "$6$nixliftsandbox$2cnMtHRbtGJqmD5HdxJCiMQAEGBF2AiphH4I5/tkmVlTULHkK3sf7ym7EbUrRVLkIOeoO3C"  # noqa: S105
    "ClaEBAz2yZNUUG1"
)
#: the file in each host's /etc/sudoers.d with the users' rules
SUDOERS_FILE = "nixlift-sandbox"
#: user (and group) ids are taken from here upwards
FIRST_ID = 1500


@dataclass(frozen=True)
class HostUser:
    name: str
    #: the password field of its /etc/shadow line. Not "!…": sshd without PAM (as the hosts run
    #: it) refuses locked accounts, so a user without a password has "*" (no password matches)
    shadow: str
    #: the user's line in /etc/sudoers.d/nixlift-sandbox
    sudo_rule: str
    gecos: str


USERS = (
    HostUser(
        name=DEPLOY_USER,
        shadow="*",
        sudo_rule=f"{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL",
        gecos="nixlift sandbox user with sudo without a password",
    ),
    HostUser(
        name=ADMIN_USER,
        shadow=ADMIN_PASSWORD_HASH,
        sudo_rule=f"{ADMIN_USER} ALL=(ALL) ALL",
        gecos="nixlift sandbox user with sudo with a password",
    ),
)

#: every user of a host who logs in with the sandbox's client key
LOGINS = ("root", *(u.name for u in USERS))


@dataclass(frozen=True)
class Accounts:
    """/etc/passwd, /etc/group and /etc/shadow with the users in them, and each user's id."""

    passwd: str
    group: str
    shadow: str
    #: (name, id) per user; the id is both the user's and its group's
    ids: tuple[tuple[str, int], ...]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _field(line: str, index: int) -> str:
    fields = line.split(":")
    return fields[index] if len(fields) > index else ""


def _numbers(lines: Iterable[str], index: int) -> set[int]:
    return {int(f) for f in (_field(line, index) for line in lines) if f.isdigit()}


def _choose_ids(passwd: list[str], group: list[str], names: Sequence[str]) -> dict[str, int]:
    """An id per name, free as a uid and as a gid among the other accounts. A user the files
    have already keeps its uid (so its home keeps its owner from one start to the next)."""
    others_p = [line for line in passwd if _field(line, 0) not in names]
    others_g = [line for line in group if _field(line, 0) not in names]
    taken = _numbers(others_p, 2) | _numbers(others_g, 2)
    ids: dict[str, int] = {}
    for name in names:
        old = next((_field(line, 2) for line in passwd if _field(line, 0) == name), "")
        if old.isdigit() and int(old) not in taken:
            ids[name] = int(old)
            taken.add(int(old))
    candidate = FIRST_ID
    for name in names:
        if name in ids:
            continue
        while candidate in taken:
            candidate += 1
        ids[name] = candidate
        taken.add(candidate)
    return ids


def add_accounts(
    passwd: str, group: str, shadow: str, *, shell: str, users: Sequence[HostUser] = USERS
) -> Accounts:
    """The three files with `users` in them, each with a group of its own (gid = uid) and the
    home /home/NAME. Lines of the same names are replaced; the others stay as they are."""
    names = [u.name for u in users]
    p, g, s = _lines(passwd), _lines(group), _lines(shadow)
    ids = _choose_ids(p, g, names)

    def keep(lines: list[str]) -> list[str]:
        return [line for line in lines if _field(line, 0) not in names]

    p, g, s = keep(p), keep(g), keep(s)
    for user in users:
        n = ids[user.name]
        p.append(f"{user.name}:x:{n}:{n}:{user.gecos}:/home/{user.name}:{shell}")
        g.append(f"{user.name}:x:{n}:")
        # no password aging (empty fields): a password never expires, nor must it change
        s.append(":".join([user.name, user.shadow, "", "", "", "", "", "", ""]))
    return Accounts(
        passwd="".join(line + "\n" for line in p),
        group="".join(line + "\n" for line in g),
        shadow="".join(line + "\n" for line in s),
        ids=tuple((name, ids[name]) for name in names),
    )


def render_sudoers(users: Sequence[HostUser] = USERS) -> str:
    lines = ["# nixlift sandbox host users, written by `nixlift-sandbox up`"]
    lines += [u.sudo_rule for u in users]
    return "\n".join(lines) + "\n"


def _login_shell() -> str:
    return "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"


def _install(path: Path, text: str, like: Path, default_mode: int) -> None:
    """Write `path` with the mode and group of `like` (the real /etc's file), owned by root."""
    try:
        info = like.stat()
        mode, gid = stat.S_IMODE(info.st_mode), info.st_gid
    except OSError:
        mode, gid = default_mode, 0
    _write_if_changed(path, text, mode)
    os.chown(path, 0, gid)


def install_users(
    etc: Path, home: Path, *, real_etc: Path = Path("/etc"), users: Sequence[HostUser] = USERS
) -> Accounts:
    """Put `users` into the host's /etc (`etc`, the overlay's upper layer: passwd, group, shadow,
    sudoers.d/nixlift-sandbox) and give each a home in `home` (the host's /home).

    Only while the host is stopped: an overlay's layers must not change under a mounted one.
    What the host has in these files otherwise (its own changes included) stays.
    """
    texts = {name: _host_etc_text(etc / name, real_etc / name) for name in ("passwd", "group")}
    shadow = _host_etc_text(etc / "shadow", real_etc / "shadow")
    accounts = add_accounts(
        texts["passwd"], texts["group"], shadow, shell=_login_shell(), users=users
    )
    _install(etc / "passwd", accounts.passwd, real_etc / "passwd", 0o644)
    _install(etc / "group", accounts.group, real_etc / "group", 0o644)
    _install(etc / "shadow", accounts.shadow, real_etc / "shadow", 0o640)
    sudoers_d = etc / "sudoers.d"
    sudoers_d.mkdir(mode=0o755, exist_ok=True)
    # sudo ignores a sudoers file that others may write; 0440 root:root as visudo makes them
    _write_if_changed(sudoers_d / SUDOERS_FILE, render_sudoers(users), 0o440)
    home.mkdir(mode=0o755, exist_ok=True)
    for name, n in accounts.ids:
        user_home = home / name
        user_home.mkdir(mode=0o700, exist_ok=True)
        os.chown(user_home, n, n)
    return accounts
