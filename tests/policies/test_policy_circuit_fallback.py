from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest

from ai_orchestration._runtime import call_voice
from ai_orchestration.context import ToolCall
from ai_orchestration.errors import (
    BadRequestError,
    CircuitOpenError,
    DeadlineExceededError,
    ProviderUnavailableError,
    VoiceError,
)
from ai_orchestration.policies import (
    CircuitPolicy,
    CircuitRegistry,
    CircuitSettings,
    CircuitState,
    FallbackPolicy,
    FallbackResponse,
    apply_step_policies,
    with_policies,
)
from ai_orchestration.testing import FakeClock, FaultyVoice, ScriptedVoice, SeededVoice
from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse

REQ = VoiceRequest.from_prompt("q")
SETTINGS = CircuitSettings(failure_rate=0.5, min_calls=4, window_s=10, cooldown_s=30, probes=2)


def down(voice: str = "p") -> ProviderUnavailableError:
    return ProviderUnavailableError("503", voice=voice)


async def test_circuit_opens_at_failure_rate_and_refuses_without_calling() -> None:
    circuits = CircuitRegistry()  # the registry the policy is given
    clock = FakeClock()
    inner = ScriptedVoice("p", ["ok", down(), "ok", down()])
    voice = with_policies(inner, CircuitPolicy(settings=SETTINGS, registry=circuits, clock=clock))
    breaker = circuits.get("p")
    for _ in range(4):
        with contextlib.suppress(ProviderUnavailableError):
            await voice.respond(REQ)
    assert breaker.state is CircuitState.OPEN  # 2 failures of 4 calls = 0.5
    with pytest.raises(CircuitOpenError):
        await voice.respond(REQ)
    assert len(inner.requests) == 4
    assert not circuits.available("p")


async def test_failures_outside_the_window_are_forgotten() -> None:
    circuits = CircuitRegistry()  # the registry the policy is given
    clock = FakeClock()
    voice = with_policies(
        ScriptedVoice("p", [down(), down(), "ok", "ok", "ok"]),
        CircuitPolicy(settings=SETTINGS, registry=circuits, clock=clock),
    )
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await voice.respond(REQ)
    clock.advance(11)  # both failures leave the 10 s window
    for _ in range(3):
        await voice.respond(REQ)
    assert circuits.get("p").state is CircuitState.CLOSED
    assert circuits.get("p").snapshot()["failure_rate"] == 0.0


async def test_caller_faults_do_not_count_as_provider_failures() -> None:
    circuits = CircuitRegistry()  # the registry the policy is given
    clock = FakeClock()
    bad = [BadRequestError("400", voice="p")] * 6
    voice = with_policies(
        ScriptedVoice("p", bad), CircuitPolicy(settings=SETTINGS, registry=circuits, clock=clock)
    )
    for _ in range(6):
        with pytest.raises(BadRequestError):
            await voice.respond(REQ)
    assert circuits.get("p").state is CircuitState.CLOSED


async def test_half_open_probe_failure_reopens() -> None:
    clock = FakeClock()
    cb = CircuitRegistry().get("k", SETTINGS, clock)
    for _ in range(4):
        cb.on_failure(cb.acquire())
    assert cb.state is CircuitState.OPEN
    clock.advance(30)
    assert cb.state is CircuitState.HALF_OPEN
    probe = cb.acquire()
    assert probe is True
    cb.on_failure(probe)
    assert cb.state is CircuitState.OPEN
    clock.advance(29.9)
    assert cb.state is CircuitState.OPEN


async def test_half_open_limits_concurrent_probes() -> None:
    clock = FakeClock()
    cb = CircuitRegistry().get("k", SETTINGS, clock)
    for _ in range(4):
        cb.on_failure(cb.acquire())
    clock.advance(30)
    assert cb.acquire() and cb.acquire()
    assert not cb.available()
    with pytest.raises(CircuitOpenError):
        cb.acquire()
    cb.on_neutral(True)  # a cancelled probe frees its slot
    assert cb.available()


async def test_provider_outage_opens_circuit_moves_traffic_and_recovers(in_run: Any) -> None:
    circuits = CircuitRegistry()  # the registry the policy is given
    """The issue's scenario: full outage → open within the window → fallback answers →
    half-open after the cool-down → closed once probes succeed."""
    clock = FakeClock()
    provider = FaultyVoice(SeededVoice("primary", seed=1), name="primary")
    backup = SeededVoice("backup", seed=2)
    voice = with_policies(
        provider,
        FallbackPolicy([backup]),
        CircuitPolicy(settings=SETTINGS, registry=circuits, clock=clock),
    )
    breaker = circuits.get("primary")
    provider.down = True
    answered = []
    with in_run() as (state, _):
        for _ in range(6):
            out = await call_voice(voice, REQ)
            assert isinstance(out, FallbackResponse)
            answered.append(out.answered_by)
            clock.advance(1)
    assert answered == ["backup"] * 6
    assert breaker.state is CircuitState.OPEN
    assert provider.injected["down"] == 4  # opened after min_calls; then no more calls sent
    spans = state.trace.find(name="primary")
    assert spans[-1].attributes is not None
    assert spans[-1].attributes["answered_by"] == "backup"
    assert "CircuitOpenError" in spans[-1].attributes["fallback_errors"][0]

    provider.down = False
    clock.advance(30)
    assert breaker.state is CircuitState.HALF_OPEN
    first = await voice.respond(REQ)
    assert not isinstance(first, FallbackResponse)  # probe 1 went to the provider
    assert breaker.state is CircuitState.HALF_OPEN
    await voice.respond(REQ)
    assert breaker.state is CircuitState.CLOSED


async def test_circuit_as_step_policy() -> None:
    clock = FakeClock()
    policy = CircuitPolicy(key="step-k", settings=SETTINGS, clock=clock)

    async def failing() -> None:
        raise down()

    call = apply_step_policies(failing, (policy,), "s")
    for _ in range(4):
        with pytest.raises(ProviderUnavailableError):
            await call()
    with pytest.raises(CircuitOpenError):
        await call()


async def test_fallback_tries_in_order_and_raises_last_when_all_fail() -> None:
    a = ScriptedVoice("a", [down("a")])
    b = ScriptedVoice("b", [down("b")])
    c = ScriptedVoice("c", [down("c")])
    voice = with_policies(a, FallbackPolicy([b, c]))
    assert voice.name == "a"
    with pytest.raises(ProviderUnavailableError) as info:
        await voice.respond(REQ)
    assert info.value.voice == "c"
    for v in (a, b, c):
        v.assert_complete()


async def test_fallback_does_not_swallow_deadlines() -> None:
    a = ScriptedVoice("a", [DeadlineExceededError("late", scope="run", timeout=1.0)])
    b = ScriptedVoice("b", ["never"])
    voice = with_policies(a, FallbackPolicy([b]))
    with pytest.raises(DeadlineExceededError):
        await voice.respond(REQ)
    assert b.requests == []  # the fallback was never asked


async def test_fallback_response_keeps_the_answer() -> None:
    voice = with_policies(
        ScriptedVoice("a", [down("a")]), FallbackPolicy([ScriptedVoice("b", ["yes"])])
    )
    out = await voice.respond(REQ)
    assert isinstance(out, FallbackResponse)
    assert (out.text, out.model, out.answered_by) == ("yes", "scripted:b", "b")
    assert out.fallback_errors == ("a: ProviderUnavailableError: voice 'a': 503",)


async def test_fallback_response_carries_every_field_of_the_answer() -> None:
    answer = VoiceResponse(
        "yes",
        usage=Usage(3, 4, 0.5, 1),
        model="m",
        finish_reason="stop",
        latency_s=0.25,
        parsed={"a": 1},
        tool_calls=(ToolCall("c1", "f", '{"x": 1}'),),
        distribution={"yes": 0.9, "no": 0.1},
        confidence=0.8,
        raw={"id": "r"},
    )
    voice = with_policies(
        ScriptedVoice("a", [down("a")]), FallbackPolicy([ScriptedVoice("b", [answer])])
    )
    out = await voice.respond(REQ)
    assert isinstance(out, FallbackResponse) and out.answered_by == "b"
    for f in dataclasses.fields(VoiceResponse):
        assert getattr(out, f.name) == getattr(answer, f.name), f.name


def test_fallback_policy_keeps_a_tuple_and_defaults_to_every_voice_error() -> None:
    b = ScriptedVoice("b", [])
    policy = FallbackPolicy([b])
    assert policy.fallbacks == (b,) and policy.on == (VoiceError,)
    assert policy == FallbackPolicy((b,)) and hash(policy) == hash(FallbackPolicy((b,)))
