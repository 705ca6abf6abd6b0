from __future__ import annotations

import asyncio
import gc
import random
import weakref
from typing import Any

import pytest

from ai_orchestration._runtime import call_voice
from ai_orchestration.errors import (
    AuthenticationError,
    DeadlineExceededError,
    ProviderUnavailableError,
    RateLimitedError,
    StepError,
    VoiceTimeoutError,
)
from ai_orchestration.policies import (
    DeadlinePolicy,
    RetryPolicy,
    TimeoutPolicy,
    apply_step_policies,
    deadline_scope,
    is_retryable,
    remaining_time,
    with_policies,
)
from ai_orchestration.policies._alarms import alarms
from ai_orchestration.testing import FakeClock, FunctionVoice, ScriptedVoice
from ai_orchestration.voices import VoiceRequest

REQ = VoiceRequest.from_prompt("q")


def down(voice: str = "a") -> ProviderUnavailableError:
    return ProviderUnavailableError("503", voice=voice)


async def test_retry_backoff_is_full_jitter_from_seeded_rng() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=3.0, seed=42, clock=clock)
    voice = with_policies(ScriptedVoice("a", [down(), down(), down(), "ok"]), policy)
    out = await voice.respond(REQ)
    assert out.text == "ok"
    rng = random.Random(42)
    expected = [rng.uniform(0, 1.0), rng.uniform(0, 2.0), rng.uniform(0, 3.0)]
    assert clock.sleeps == expected


async def test_retry_stops_after_max_attempts_and_raises_last_error() -> None:
    clock = FakeClock()
    inner = ScriptedVoice("a", [down(), down()])
    voice = with_policies(inner, RetryPolicy(max_attempts=2, clock=clock))
    with pytest.raises(ProviderUnavailableError):
        await voice.respond(REQ)
    inner.assert_complete()
    assert len(clock.sleeps) == 1


async def test_retry_never_retries_non_retryable_errors() -> None:
    clock = FakeClock()
    inner = ScriptedVoice("a", [AuthenticationError("401", voice="a"), "never"])
    voice = with_policies(inner, RetryPolicy(clock=clock))
    with pytest.raises(AuthenticationError):
        await voice.respond(REQ)
    assert clock.sleeps == [] and len(inner.requests) == 1


async def test_retry_honours_retry_after_and_gives_up_when_too_long() -> None:
    clock = FakeClock()
    policy = RetryPolicy(base_delay=0.01, max_retry_after=10, seed=1, clock=clock)
    ok = with_policies(
        ScriptedVoice("a", [RateLimitedError("429", voice="a", retry_after=7.5), "ok"]), policy
    )
    assert (await ok.respond(REQ)).text == "ok"
    assert clock.sleeps == [7.5]
    too_long = RateLimitedError("429", voice="a", retry_after=11)
    voice = with_policies(ScriptedVoice("a", [too_long, "never"]), policy)
    with pytest.raises(RateLimitedError):
        await voice.respond(REQ)
    assert clock.sleeps == [7.5]


async def test_retry_records_each_failed_attempt_on_the_voice_span(in_run: Any) -> None:
    clock = FakeClock()
    voice = with_policies(ScriptedVoice("a", [down(), "ok"]), RetryPolicy(seed=3, clock=clock))
    with in_run() as (state, _):
        await call_voice(voice, REQ)
    span = state.trace.find(name="a")[0]
    assert span.attributes is not None
    assert span.attributes["retries"] == [
        {
            "attempt": 1,
            "error": "ProviderUnavailableError: voice 'a': 503",
            "delay_s": clock.sleeps[0],
        }
    ]


async def test_retry_gives_up_early_when_backoff_would_pass_the_deadline() -> None:
    clock = FakeClock()
    inner = ScriptedVoice("a", [RateLimitedError("429", voice="a", retry_after=5), "never"])
    voice = with_policies(inner, DeadlinePolicy(1.0), RetryPolicy(clock=clock))
    with pytest.raises(RateLimitedError):
        await voice.respond(REQ)
    assert clock.sleeps == []


async def test_retry_as_step_policy_unwraps_step_errors() -> None:
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            err = StepError("step failed", step="s")
            err.__cause__ = down()
            raise err
        return "done"

    clock = FakeClock()
    call = apply_step_policies(step, (RetryPolicy(clock=clock),), "s")
    assert await call() == "done"
    assert calls == 2
    assert is_retryable(down()) and not is_retryable(ValueError())


async def test_timeout_per_attempt_raises_retryable_voice_timeout() -> None:
    async def hang(_: VoiceRequest) -> str:
        await asyncio.Event().wait()
        return "never"

    voice = with_policies(FunctionVoice("slow", hang), TimeoutPolicy(0.005))
    with pytest.raises(VoiceTimeoutError) as info:
        await voice.respond(REQ)
    assert info.value.voice == "slow" and info.value.retryable


async def test_timeout_then_retry_recovers_from_a_hang() -> None:
    answers = iter(["hang", "ok"])

    async def flaky(_: VoiceRequest) -> str:
        if next(answers) == "hang":
            await asyncio.Event().wait()
        return "ok"

    voice = with_policies(
        FunctionVoice("f", flaky), RetryPolicy(clock=FakeClock()), TimeoutPolicy(0.005)
    )
    assert (await voice.respond(REQ)).text == "ok"


async def test_deadline_covers_all_attempts_and_raises_deadline_exceeded(in_run: Any) -> None:
    async def hang(_: VoiceRequest) -> str:
        await asyncio.Event().wait()
        return "never"

    voice = with_policies(
        FunctionVoice("h", hang),
        DeadlinePolicy(0.01),
        RetryPolicy(max_attempts=100),
        TimeoutPolicy(1.0),
    )
    with in_run() as (state, _), pytest.raises(DeadlineExceededError) as info:
        await call_voice(voice, REQ)
    assert info.value.scope == "voice 'h'"
    span = state.trace.find(name="h")[0]
    assert span.status == "error" and span.attributes is not None
    assert span.attributes["deadline_exceeded"] == "voice 'h'"


async def test_deadline_propagates_to_nested_code_and_never_extends_outer() -> None:
    async with deadline_scope(0.5):
        outer = remaining_time()
        async with deadline_scope(100.0):
            inner = remaining_time()
    assert outer is not None and inner is not None
    assert 0 < inner <= outer <= 0.5
    assert remaining_time() is None


async def test_timeout_and_deadline_as_step_policies() -> None:
    async def slow() -> str:
        await asyncio.Event().wait()
        return "never"

    for policy in (TimeoutPolicy(0.003), DeadlinePolicy(0.003)):
        with pytest.raises(DeadlineExceededError) as info:
            await apply_step_policies(slow, (policy,), "s")()
        assert info.value.scope == "s"


def test_invalid_policy_values_are_rejected() -> None:
    for bad in (
        lambda: TimeoutPolicy(0),
        lambda: DeadlinePolicy(-1),
        lambda: RetryPolicy(max_attempts=0),
    ):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("policy", [TimeoutPolicy(0.005), DeadlinePolicy(0.005)])
async def test_expired_timer_leaves_no_cancel_request_when_inner_converts_it(
    policy: TimeoutPolicy | DeadlinePolicy,
) -> None:
    async def converts(_: VoiceRequest) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise down("c") from None
        return "never"

    voice = with_policies(FunctionVoice("c", converts), policy)
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(TimeoutError):  # the outer timeout still works: not CancelledError
        async with asyncio.timeout(0.05):
            with pytest.raises(ProviderUnavailableError):
                await voice.respond(REQ)
            assert task.cancelling() == 0
            await asyncio.Event().wait()
    assert task.cancelling() == 0


def test_repeated_asyncio_run_keeps_no_timer_registry_of_old_loops() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    voice = with_policies(ScriptedVoice("a", ["ok"] * 5), DeadlinePolicy(5.0), TimeoutPolicy(5.0))

    async def call() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        assert (await voice.respond(REQ)).text == "ok"

    for _ in range(5):
        asyncio.run(call())
    gc.collect()
    assert [r() is None for r in loops[:-1]] == [True] * 4  # only the latest may stay cached


async def test_a_cancelled_alarm_frees_its_callback_while_still_queued() -> None:
    class Callback:
        def __call__(self) -> None:
            raise AssertionError("a cancelled alarm fired")

    callback = Callback()
    gone = weakref.ref(callback)
    reg = alarms()
    reg.add(reg.loop.time() + 60.0, callback).cancel()
    del callback
    gc.collect()
    assert gone() is None
