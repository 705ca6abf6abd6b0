"""Voice policies are middleware, ``async __call__(request, call_next)``, run by one wrapper."""

from __future__ import annotations

import dataclasses

import pytest

from ai_orchestration.errors import ProviderUnavailableError
from ai_orchestration.policies import (
    CircuitPolicy,
    DeadlinePolicy,
    FallbackPolicy,
    HedgePolicy,
    PolicyVoice,
    RateLimitPolicy,
    RateLimits,
    RetryPolicy,
    TimeoutPolicy,
    ValidationPolicy,
    VoiceCall,
    with_policies,
)
from ai_orchestration.testing import FakeClock, ScriptedVoice
from ai_orchestration.voices import VoiceRequest, VoiceResponse

REQ = VoiceRequest.from_prompt("q")


@dataclasses.dataclass
class Tag:
    """A user's policy: marks what it saw going in and coming out."""

    label: str
    seen: list[str]

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        self.seen.append(f"{self.label}>")
        asked = VoiceRequest.from_prompt(request.prompt + self.label)
        response = await call_next(asked)
        self.seen.append(f"<{self.label}")
        return dataclasses.replace(response, text=response.text + self.label)


async def test_plain_middleware_composes_outermost_first() -> None:
    seen: list[str] = []
    inner = ScriptedVoice("v", ["ok"])
    voice = with_policies(inner, Tag("A", seen), Tag("B", seen))
    out = await voice.respond(REQ)
    assert seen == ["A>", "B>", "<B", "<A"]
    assert inner.requests[0].prompt == "qAB"  # A changed the request first, then B
    assert out.text == "okBA" and voice.name == "v"


async def test_middleware_mixes_with_builtin_policies() -> None:
    seen: list[str] = []
    down = ProviderUnavailableError("503", voice="v")
    inner = ScriptedVoice("v", [down, "ok"])
    retry = RetryPolicy(max_attempts=2, clock=FakeClock())
    voice = with_policies(inner, Tag("A", seen), retry, Tag("B", seen))
    assert (await voice.respond(REQ)).text == "okBA"
    assert seen == ["A>", "B>", "B>", "<B", "<A"]  # B runs per attempt, A once


def test_every_builtin_voice_policy_is_the_one_wrapper() -> None:
    inner = ScriptedVoice("v", [])
    policies = (
        DeadlinePolicy(5),
        FallbackPolicy([ScriptedVoice("w", [])]),
        ValidationPolicy(),
        RetryPolicy(),
        CircuitPolicy(),
        HedgePolicy(),
        TimeoutPolicy(1),
        RateLimitPolicy(RateLimits(requests_per_minute=10)),
    )
    for policy in policies:
        wrapped = with_policies(inner, policy)
        assert isinstance(wrapped, PolicyVoice) and wrapped.inner is inner
        assert wrapped.middleware is not None and wrapped.name == "v"
        assert repr(wrapped).startswith(f"<{type(wrapped).__name__} 'v' with ")


async def test_a_policy_voice_without_middleware_forwards() -> None:
    voice = PolicyVoice(ScriptedVoice("v", ["ok"]), name="renamed")
    assert voice.name == "renamed" and (await voice.respond(REQ)).text == "ok"


async def test_middleware_errors_pass_through_unchanged() -> None:
    seen: list[str] = []
    voice = with_policies(ScriptedVoice("v", [ProviderUnavailableError("503", voice="v")]))
    voice = with_policies(voice, Tag("A", seen))
    with pytest.raises(ProviderUnavailableError):
        await voice.respond(REQ)
    assert seen == ["A>"]
