"""Calls made through the held lock's session: a session that ended before a call was sent
through it gives way to a session of the call's own; one cut mid-call is not used again."""

from __future__ import annotations

import asyncio

import pytest
from fakehost import FakeHost

from nixlift import proc
from nixlift.agent.protocol import Agent, AgentError, Held


def _held(task: asyncio.Task[proc.Completed]) -> Held:
    return Held("h1", task, {"open": True}, asyncio.Queue(), asyncio.Queue())


def test_a_session_that_ends_before_the_call_gives_way_to_a_call_of_its_own() -> None:
    async def scenario() -> tuple[dict[str, object], list[str]]:
        host = FakeHost()
        agent = Agent(host)
        ending: asyncio.Future[proc.Completed] = asyncio.get_running_loop().create_future()
        held = _held(asyncio.ensure_future(ending))
        agent.session = held
        async with held.turn:  # another exchange is under way when the call comes
            call = asyncio.ensure_future(agent.call("probe", {"system": ""}, what="probe"))
            await asyncio.sleep(0)
            ending.set_result(proc.Completed(("ssh",), 255, "", ""))  # the connection went
            await asyncio.sleep(0)
        return await call, host.actions()

    answer, actions = asyncio.run(scenario())
    assert "current" in answer and actions == ["probe"]  # made over a session of its own


def test_a_call_cut_short_leaves_the_session_unused() -> None:
    async def scenario() -> Held:
        never: asyncio.Future[proc.Completed] = asyncio.get_running_loop().create_future()
        held = _held(asyncio.ensure_future(never))
        with pytest.raises(TimeoutError):
            await held.call(b"{}\n", timeout=0.01)  # no answer: what comes later is not ours
        assert not held.usable
        with pytest.raises(AgentError):
            await held.call(b"{}\n", timeout=0.01)
        never.cancel()
        return held

    asyncio.run(scenario())
