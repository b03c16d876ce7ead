"""Which machine builds a system: `--build-host HOST` for every machine, else the machine's
`deployment.buildHost` (what building there means: deploy/buildhost.py)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nixlift.errors import UsageError

if TYPE_CHECKING:
    from nixlift.model import Machine

    # (imported where used: the evaluation, which asks spec_for, starts before the transport's
    # modules are loaded)
    from nixlift.transport.ssh import SshTarget


@dataclass(frozen=True)
class BuildHostSpec:
    """Where some machines are built: `[user@]host`, reached with these ssh options."""

    destination: str
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.destination.rpartition("@")[2]

    def target(self, connect_timeout: int) -> SshTarget:
        from nixlift.transport.ssh import SshTarget

        user, _, host = self.destination.rpartition("@")
        if not host or any(c.isspace() for c in self.destination):
            raise UsageError(
                f"build host {self.destination!r} is not [USER@]HOST",
                hint="give its address or ssh alias; a port goes into your ssh config "
                "or NIX_SSHOPTS (-p PORT)",
            )
        return SshTarget(
            name=f"build host {host}",
            host=host,
            user=user or None,
            options=self.options,
            connect_timeout=connect_timeout,
        )


def spec_for(machine: Machine, given: str | None) -> BuildHostSpec | None:
    """--build-host for every machine, else its deployment.buildHost; reached with NIX_SSHOPTS
    (as nixos-rebuild does) and the machine's own sshOptions."""
    destination = given or machine.deployment.build_host
    if destination is None:
        return None
    options = tuple(shlex.split(os.environ.get("NIX_SSHOPTS", ""))) + machine.deployment.ssh_options
    return BuildHostSpec(destination, options)
