from __future__ import annotations

import asyncio

import pytest

from ai_orchestration.errors import ProviderUnavailableError
from ai_orchestration.policies import HedgePolicy, with_policies
from ai_orchestration.stats import StatsRegistry
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceRequest

REQ = VoiceRequest.from_prompt("q")


class Calls:
    """A voice whose n-th call runs the n-th behaviour; records cancellations."""

    def __init__(self, *behaviours: object) -> None:
        self.behaviours = list(behaviours)
        self.n = 0
        self.cancelled: list[int] = []

    async def __call__(self, _: VoiceRequest) -> str:
        self.n += 1
        n = self.n
        try:
            out = await self.behaviours[n - 1]()  # type: ignore[operator]
        except asyncio.CancelledError:
            self.cancelled.append(n)
            raise
        return str(out)


def others() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def forever() -> str:
    await asyncio.Event().wait()
    return "never"


async def test_hedge_wins_when_first_is_slow_and_first_is_cancelled() -> None:
    async def quick() -> str:
        return "hedged"

    calls = Calls(forever, quick)
    voice = with_policies(FunctionVoice("v", calls), HedgePolicy(delay=0.001))
    out = await voice.respond(REQ)
    assert out.text == "hedged"
    assert calls.cancelled == [1]
    assert others() == set()


async def test_first_wins_and_hedge_is_cancelled() -> None:
    release = asyncio.Event()

    async def first() -> str:
        await release.wait()
        return "first"

    async def second() -> str:
        release.set()
        return await forever()

    calls = Calls(first, second)
    voice = with_policies(FunctionVoice("v", calls), HedgePolicy(delay=0.001))
    assert (await voice.respond(REQ)).text == "first"
    assert calls.cancelled == [2]
    assert others() == set()


async def test_first_failure_waits_for_the_running_hedge() -> None:
    started = asyncio.Event()

    async def first() -> str:
        await started.wait()
        raise ProviderUnavailableError("503", voice="v")

    async def second() -> str:
        started.set()
        await asyncio.sleep(0)
        return "hedged"

    voice = with_policies(FunctionVoice("v", Calls(first, second)), HedgePolicy(delay=0.001))
    assert (await voice.respond(REQ)).text == "hedged"


async def test_both_failing_raises_the_first_error() -> None:
    started = asyncio.Event()

    async def first() -> str:
        await started.wait()
        await asyncio.sleep(0)
        raise ProviderUnavailableError("first", voice="v")

    async def second() -> str:
        started.set()
        raise ProviderUnavailableError("second", voice="v")

    voice = with_policies(FunctionVoice("v", Calls(first, second)), HedgePolicy(delay=0.001))
    with pytest.raises(ProviderUnavailableError, match="first"):
        await voice.respond(REQ)
    assert others() == set()


async def test_fast_failure_before_the_delay_is_not_hedged() -> None:
    async def fail() -> str:
        raise ProviderUnavailableError("503", voice="v")

    calls = Calls(fail, forever)
    voice = with_policies(FunctionVoice("v", calls), HedgePolicy(delay=10.0))
    with pytest.raises(ProviderUnavailableError):
        await voice.respond(REQ)
    assert calls.n == 1


async def test_outer_cancellation_cancels_both_attempts() -> None:
    both_running = asyncio.Event()

    async def second() -> str:
        both_running.set()
        return await forever()

    calls = Calls(forever, second)
    voice = with_policies(FunctionVoice("v", calls), HedgePolicy(delay=0.001))
    task = asyncio.create_task(voice.respond(REQ))
    await both_running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(calls.cancelled) == [1, 2]
    assert others() == set()


def test_delay_comes_from_live_p95_once_enough_samples() -> None:
    stats = StatsRegistry()
    policy = HedgePolicy(min_samples=20, default_delay=2.0, stats=stats)
    for i in range(19):
        stats.record("v", 0.01 * (i + 1))
    assert policy.delay_for("v") == 2.0
    stats.record("v", 0.20)
    assert policy.delay_for("v") == pytest.approx(0.19)  # nearest rank: 19th of 20
    assert HedgePolicy(stats=stats).delay_for("unknown") is None


def test_per_attempt_latencies_win_over_whole_call_latencies() -> None:
    stats = StatsRegistry()
    policy = HedgePolicy(min_samples=20, stats=stats)
    for _ in range(20):
        stats.record("v", 1.0)  # whole calls: retries and their backoff inside
    assert policy.delay_for("v") == 1.0  # the upper bound until attempts are known
    for _ in range(20):
        stats.record("v/attempt", 0.05)
    assert policy.delay_for("v") == 0.05


async def test_hedged_voices_record_each_successful_attempt() -> None:
    stats = StatsRegistry()
    slow_then_quick = Calls(lambda: asyncio.sleep(0.2, "slow"), lambda: asyncio.sleep(0.01, "q"))
    hedged = with_policies(
        FunctionVoice("v", slow_then_quick), HedgePolicy(delay=0.05, stats=stats)
    )
    assert (await hedged.respond(REQ)).text == "q"  # the hedge won after 0.05 + 0.01 s
    plain = with_policies(FunctionVoice("w", lambda r: "x"), HedgePolicy(stats=stats))
    await plain.respond(REQ)  # no delay known yet: not hedged, still measured
    v, w = stats.get("v/attempt"), stats.get("w/attempt")
    assert v is not None and v.window_calls == 1 and v.p50 is not None
    assert 0.01 <= v.p50 < 0.1  # the winning hedge's own latency, not the whole call's
    assert w is not None and w.window_calls == 1
