"""How this run reaches hosts: the connect timeout, and the one sudo password prompt."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence

from nixlift.cli.options import Invocation
from nixlift.deploy.fanout import Reach
from nixlift.errors import UsageError
from nixlift.model import Machine
from nixlift.transport.elevate import Elevation, Password, reads_password


def reach(
    inv: Invocation, machines: Sequence[Machine], *, local: frozenset[str] = frozenset()
) -> Reach:
    """With --ask-sudo-password (or deploy-rs' interactiveSudo on a machine that needs it), ask
    once (on the terminal) for the password every host whose SSH user is not root gives to
    sudo."""
    password = None
    asked = any(m.deployment.interactive_sudo and _needs_root(m, local) for m in machines)
    if inv.ask_sudo_password or asked:
        needing = [m for m in machines if _needs_root(m, local)]
        if not needing:
            print(
                "nixlift: every selected host is reached as root: no sudo password asked",
                file=sys.stderr,
            )
        else:
            for m in needing:
                command = m.deployment.privilege_escalation
                if not reads_password(command):
                    raise UsageError(
                        f"--ask-sudo-password gives the password to sudo, but machine "
                        f"'{m.name}' becomes root with {' '.join(command)!r}",
                        host=m.name,
                        hint="let that command work without a password, or use sudo",
                    )
            users = sorted(
                {
                    getpass.getuser() if m.name in local else m.deployment.target_user or ""
                    for m in needing
                }
            )
            password = ask(", ".join(u for u in users if u) or "the SSH user")
    return Reach(
        inv.fleet.connect_timeout, password=password, local=local, compress=inv.fleet.compress
    )


def _needs_root(machine: Machine, local: frozenset[str]) -> bool:
    if machine.name in local:
        return os.geteuid() != 0
    return Elevation.for_user(machine.deployment.target_user).needed


def ask(users: str) -> Password:
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise UsageError(
            "--ask-sudo-password needs a terminal to ask on",
            hint="run nixlift in a terminal, or allow the SSH user sudo without a "
            "password (NOPASSWD) on the hosts",
        ) from None
    os.close(tty)
    try:
        value = getpass.getpass(f"[nixlift] sudo password for {users}: ")
    except (EOFError, KeyboardInterrupt):
        raise UsageError("no sudo password given") from None
    try:
        return Password(value)
    except ValueError as e:
        raise UsageError(str(e)) from None
