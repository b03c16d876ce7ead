import asyncio

import pytest

from nixlift.deploy.rollout import FailurePolicy, Rollout, Stopped
from nixlift.errors import UsageError


def test_policy_parsing_and_limits() -> None:
    assert FailurePolicy.parse(False, None).tolerated(20) is None
    assert FailurePolicy.parse(True, None).tolerated(20) == 0
    assert FailurePolicy.parse(False, "3").tolerated(20) == 3
    assert FailurePolicy.parse(False, "10%").tolerated(20) == 2
    assert FailurePolicy.parse(False, "10%").tolerated(5) == 0
    assert FailurePolicy.parse(True, "5").tolerated(20) == 0
    for bad in ("x", "-1", "150%", "3.5"):
        with pytest.raises(UsageError, match="--max-failures"):
            FailurePolicy.parse(False, bad)


def test_rollout_stops_past_the_limit() -> None:
    async def scenario() -> None:
        r = Rollout(FailurePolicy(max_failures=1), total=10)
        r.failed()
        r.may_start("copying")  # one failure is tolerated
        r.failed()
        assert r.reason == "stopped after 2 failed hosts (--max-failures 1)"
        with pytest.raises(Stopped, match="copying not started"):
            r.may_start("copying")

    asyncio.run(scenario())


def test_interrupt_cancels_interruptible_work_only() -> None:
    async def scenario() -> None:
        r = Rollout(FailurePolicy(), total=2)
        cancelled = asyncio.Event()

        async def slow() -> int:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return 1

        async def activation() -> str:
            await asyncio.sleep(0.05)
            return "finished"

        copy = asyncio.ensure_future(r.interruptible("copying", slow))
        act = asyncio.ensure_future(activation())  # not interruptible: runs to its end
        await asyncio.sleep(0.01)
        r.interrupt()
        with pytest.raises(Stopped, match="interrupted"):
            await copy
        assert cancelled.is_set()
        assert await act == "finished"
        with pytest.raises(Stopped, match="not started"):
            await r.interruptible("building", lambda: asyncio.sleep(0))

    asyncio.run(scenario())
