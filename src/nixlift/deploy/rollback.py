"""Manual rollback (`nixlift rollback`): switch a host to an earlier generation of its system
profile and activate it, under the host's lock, recorded in its history."""

from __future__ import annotations

from dataclasses import dataclass

from nixlift.agent.answers import Generation
from nixlift.agent.protocol import Agent
from nixlift.deploy import history
from nixlift.deploy.lock import HostLock, holder_info
from nixlift.errors import ActivationError, UsageError
from nixlift.events import Emit, Phase
from nixlift.model import Stage


@dataclass(frozen=True)
class RolledBack:
    generation: Generation
    #: what /run/current-system names afterwards
    running: str | None


def choose(generations: list[Generation], to: int | None, host: str) -> Generation:
    """The generation to go to: --to N, else the one before the current one."""
    if to is not None:
        for g in generations:
            if g.number == to:
                return g
        have = ", ".join(str(g.number) for g in generations) or "none"
        raise UsageError(
            f"{host} has no generation {to} (it has: {have})",
            hint="nixlift list-generations shows them",
        )
    current = next((g for g in generations if g.current), None)
    older = [g for g in generations if current is None or g.number < current.number]
    if not older:
        raise UsageError(
            f"{host} has no generation before its current one to roll back to",
            hint="nixlift list-generations shows them",
        )
    return older[-1]


async def roll_back(
    agent: Agent, *, to: int | None, deployment: str, lock_wait: int, emit: Emit
) -> RolledBack:
    name = agent.host.name
    lock = HostLock(agent, holder_info(deployment), lock_wait)
    await lock.acquire()
    try:
        target = choose(await agent.generations(), to, name)
        emit(Phase(name, Stage.ROLLBACK, f"to generation {target.number} ({target.system})"))
        switched = await agent.switch_generation(target.link)
        await lock.finish(
            history.entry(
                deployment=deployment,
                commit=None,
                system=target.system,
                goal=f"rollback to {target.number}",
                result="ok" if switched.ok else "failed",
                error=None,
            )
        )
        if not switched.ok:
            tail = "\n".join(switched.log.splitlines()[-25:])
            raise ActivationError(
                f"activating generation {target.number} on {name} failed; it runs "
                f"{switched.running or 'no system'}",
                stderr_tail=tail,
                host=name,
                hint="its last output lines say why; nixlift list-generations shows the rest",
            )
        return RolledBack(target, switched.running)
    finally:
        await lock.release()
