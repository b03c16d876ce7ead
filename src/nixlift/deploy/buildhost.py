"""Building on another machine (`--build-host HOST`, `deployment.buildHost`), as nixos-rebuild
does: evaluate here, send the derivations there, build there (one nix-store for every machine it
builds), then copy each result from there to its target: directly when the build host can reach
the target, else through here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nixlift.agent.protocol import Agent
from nixlift.deploy.build import BUILD_HINT, LocalBuilds, realise_there
from nixlift.deploy.buildspec import BuildHostSpec
from nixlift.deploy.copy import copy
from nixlift.errors import BuildError, CopyError, PlatformError
from nixlift.events import Emit, Notice, Output
from nixlift.model import Machine, Stage
from nixlift.nix import argv as nix_argv
from nixlift.nix import platforms
from nixlift.nix.logparse import run_logged
from nixlift.transport.elevate import Elevation
from nixlift.transport.ssh import SshHost

log = logging.getLogger("nixlift.buildhost")

#: what the build host says of how it builds: nix's settings, then its enabled binfmt entries
_CAPABILITY = """
nix --extra-experimental-features nix-command show-config --json || exit 1
for f in /proc/sys/fs/binfmt_misc/*; do
  [ -f "$f" ] && [ "$(head -n 1 "$f")" = enabled ] && echo "binfmt ${f##*/}"
done
exit 0
"""


class RemoteBuilds:
    """The machines one build host builds."""

    def __init__(
        self,
        spec: BuildHostSpec,
        machines: Sequence[Machine],
        control: Path,
        emit: Emit,
        *,
        connect_timeout: int = 10,
    ) -> None:
        self.spec = spec
        self.machines = list(machines)
        self.emit = emit
        target = spec.target(connect_timeout)
        self.agent = Agent(SshHost(target, control, Elevation.for_user(target.user)))
        self._task: asyncio.Future[dict[str, str | None]] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._build())

    async def _build(self) -> dict[str, str | None]:
        """Each machine's failure (None: built)."""
        host = self.agent.host
        await host.open()
        capability = await self._capability()
        problems = [(m, why) for m in self.machines if (why := capability.why_not(m.system))]
        if problems:
            raise PlatformError(
                "\n".join(
                    f"machine '{m.name}' is {m.system}, which {self.spec.name} cannot build: {why}"
                    for m, why in problems
                ),
                hint="build it elsewhere (another --build-host, or here), or let the build host "
                "emulate it (boot.binfmt.emulatedSystems)",
            )
        names = ", ".join(m.name for m in self.machines)

        def line(text: str) -> None:
            for m in self.machines:
                self.emit(Output(m.name, text))

        done = await realise_there(
            self.agent,
            list(dict.fromkeys(m.drv_path for m in self.machines)),
            what=f"building {names} on {self.spec.name}",
            on_line=line,
            check=False,
        )
        invalid = await host.run(
            [
                "nix-store",
                "--check-validity",
                "--print-invalid",
                *(m.out_path for m in self.machines),
            ],
            what="reading what was built",
            check=False,
        )
        missing = set(invalid.stdout.split())
        tail = done.stderr_tail()
        return {
            m.name: (tail or "the build failed") if m.out_path in missing else None
            for m in self.machines
        }

    async def _capability(self) -> platforms.BuildCapability:
        done = await self.agent.host.run(
            ["sh", "-c", _CAPABILITY], what="asking how it builds", error=BuildError
        )
        config_text, _, rest = done.stdout.partition("\n")
        binfmt = frozenset(
            f"{cpu}-linux"
            for entry in (
                line.split()[1] for line in rest.splitlines() if line.startswith("binfmt ")
            )
            for cpu, name in platforms.QEMU_NAMES.items()
            if entry in (name, f"{cpu}-linux")
        )
        return platforms.capability_from_config(json.loads(config_text), binfmt)

    async def wait(self, machine: Machine) -> None:
        assert self._task is not None
        failures = await asyncio.shield(self._task)
        why = failures.get(machine.name)
        if why is not None:
            raise BuildError(
                f"building {machine.name} on {self.spec.name} failed",
                stderr_tail=why,
                host=machine.name,
                hint=BUILD_HINT,
            )

    async def copy_to(
        self,
        target: Agent,
        machine: Machine,
        *,
        use_substitutes: bool,
        emit: Emit,
        daemon: bool,
        connect_timeout: int,
    ) -> str:
        """The machine's system from the build host to its target: directly, else through
        here. Says which."""
        path = machine.out_path
        host = target.host
        if isinstance(host, SshHost) and host.elevation.password is None and daemon:
            direct = replace(host.target, control_path=None)  # our master is not theirs
            argv = [
                "env",
                f"NIX_SSHOPTS={direct.nix_sshopts()}",
                *nix_argv.copy_to(host.store_url(), [path], use_substitutes=use_substitutes),
            ]
            done = await self.agent.host.run(
                argv, what=f"copying to {machine.name}", check=False, stop_with_connection=True
            )
            if done.returncode == 0:
                return f"directly from {self.spec.name}"
            why = (done.stderr.strip().splitlines() or ["it failed"])[-1]
            log.debug(
                "%s cannot copy to %s itself: %s", self.spec.name, machine.name, done.stderr_tail()
            )
            emit(
                Notice(
                    machine.name,
                    f"{self.spec.name} cannot copy to it itself ({why}); copying through here",
                )
            )
        source = self.agent.host.store_url()
        await run_logged(
            ["nix", *nix_argv.NIX_COMMAND, "copy", "--no-check-sigs", "--from", str(source), path],
            env={"NIX_SSHOPTS": self.agent.host.nix_sshopts() or ""},
            host=machine.name,
            phase=Stage.COPY,
            emit=emit,
            error=CopyError,
            what=f"copying {machine.name}'s system from {self.spec.name}",
            hint="check that this machine reaches the build host",
        )
        await copy(
            target,
            [path],
            use_substitutes=use_substitutes,
            emit=emit,
            daemon=daemon,
            connect_timeout=connect_timeout,
        )
        return "through here"

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.agent.host.close()


class AllBuilds:
    """Where each machine's system is built: here (LocalBuilds) or on its build host."""

    def __init__(self, local: LocalBuilds, remote: Sequence[RemoteBuilds]) -> None:
        self.local = local
        self.remote = list(remote)
        self._by_machine = {m.name: r for r in self.remote for m in r.machines}

    def built_on(self, machine: Machine) -> RemoteBuilds | None:
        return self._by_machine.get(machine.name)

    async def wait(self, machine: Machine) -> None:
        remote = self.built_on(machine)
        if remote is not None:
            await remote.wait(machine)
        else:
            await self.local.wait(machine)
