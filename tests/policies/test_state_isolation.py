"""Circuits, rate limiters and statistics belong to their owner and follow voice identity.

Two configurations may each name a different model ``a``: the user-chosen name must never
make them share a circuit, and one ``AiOrchestration``'s failures never open another's
circuit unless both were handed the same ``PolicyRegistries``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.errors import (
    AiOrchestrationError,
    CircuitOpenError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ai_orchestration.policies import (
    CircuitPolicy,
    CircuitRegistry,
    CircuitSettings,
    CircuitState,
    FakeClock,
    PolicyRegistries,
    RateLimitPolicy,
    RateLimits,
    with_policies,
)
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceIdentity, VoiceRequest, identity_of
from ai_orchestration.voices.openai_compat import OpenAICompatVoice

REQ = VoiceRequest.from_prompt("q")
OPENS_AFTER_TWO = CircuitSettings(failure_rate=0.5, min_calls=2, cooldown_s=60)
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}


def http_voice(base_url: str, status: int, name: str = "a") -> OpenAICompatVoice:
    """A voice called ``name`` reaching ``base_url``, which answers ``status``."""
    body = ANSWER if status == 200 else {"error": {"message": "down"}}
    transport = httpx.MockTransport(lambda _: httpx.Response(status, json=body))
    return OpenAICompatVoice(
        "gpt-4o-mini", name=name, base_url=base_url, api_key="sk-test", transport=transport
    )


async def test_two_voices_named_a_at_different_endpoints_keep_their_own_circuits() -> None:
    shared = CircuitRegistry()
    policy = CircuitPolicy(settings=OPENS_AFTER_TWO, registry=shared, clock=FakeClock())
    down = with_policies(http_voice("http://one.test/v1", 503), policy)
    up = with_policies(http_voice("http://two.test/v1", 200), policy)
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            await down.respond(REQ)
    with pytest.raises(CircuitOpenError):
        await down.respond(REQ)
    assert (await up.respond(REQ)).text == "ok"  # its own circuit, still closed
    assert {k: v["state"] for k, v in shared.snapshot().items()} == {
        "openai:gpt-4o-mini@http://one.test/v1": "open",
        "openai:gpt-4o-mini@http://two.test/v1": "closed",
    }


def test_identity_is_provider_model_endpoint_without_credentials() -> None:
    voice = http_voice("http://user:hunter2@one.test/v1/", 200, name="mine")
    assert voice.identity == VoiceIdentity("openai", "gpt-4o-mini", "http://user:***@one.test/v1")
    wrapped = with_policies(voice, CircuitPolicy())
    assert wrapped.name == "mine" and identity_of(wrapped) == voice.identity  # wrappers pass it
    assert identity_of(FunctionVoice("f", lambda r: "x")) == VoiceIdentity("", "f")
    assert identity_of(FunctionVoice("f", lambda r: "x")).key == "f"


async def test_rate_limits_are_kept_per_endpoint_of_a_provider() -> None:
    clock = FakeClock()
    policy = RateLimitPolicy(RateLimits(requests_per_minute=1, max_wait_s=5), clock=clock)
    one = with_policies(http_voice("http://one.test/v1", 200), policy)
    two = with_policies(http_voice("http://two.test/v1", 200, name="b"), policy)
    again = with_policies(http_voice("http://one.test/v1", 200, name="c"), policy)
    await one.respond(REQ)
    await two.respond(REQ)  # another endpoint: another bucket
    with pytest.raises(RateLimitedError) as info:
        await again.respond(REQ)  # another name, same endpoint: the same bucket
    assert info.value.voice == "openai@http://one.test/v1" and info.value.retry_after == 60.0


def system(tmp_path: Path, a: FunctionVoice, registries: PolicyRegistries | None = None) -> Any:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "policies": {"defaults": {"circuit": {"min_calls": 2, "cooldown_s": 60}}},
    }
    b = FunctionVoice("b", lambda r: "4")
    shared = {} if registries is None else {"registries": registries}
    return AiOrchestration(cfg, voices=[a, b], **shared)


def counting(calls: list[str], fail: bool) -> FunctionVoice:
    def answer(_: Any) -> str:
        calls.append("a")
        if fail:
            raise ProviderUnavailableError("503", voice="a")
        return "4"

    return FunctionVoice("a", answer)


def outage(tmp_path: Path, registries: PolicyRegistries | None = None) -> tuple[Any, list[str]]:
    """An instance whose voice ``a`` failed until its circuit opened (2 calls, 3 runs)."""
    calls: list[str] = []
    first = system(tmp_path / "one", counting(calls, fail=True), registries)
    for _ in range(3):
        with contextlib.suppress(AiOrchestrationError):
            first.process("2 + 2 = ?")
    assert calls == ["a", "a"]  # the third run was refused by the open circuit
    return first, calls


def test_one_instances_failures_never_open_another_instances_circuit(tmp_path: Path) -> None:
    first, _ = outage(tmp_path)
    calls: list[str] = []
    second = system(tmp_path / "two", counting(calls, fail=False))
    result = second.process("2 + 2 = ?")
    assert calls == ["a"] and all(v.ok for v in result.votes) and result.answer == "4"
    assert first.registries.circuits.get("a").state is CircuitState.OPEN
    assert second.registries.circuits.get("a").state is CircuitState.CLOSED
    stats = first.registries.stats.get("a")
    assert stats is not None and (stats.calls, stats.errors) == (3, 3)  # 2 failed + 1 refused
    mine = second.registries.stats.get("a")
    assert mine is not None and (mine.calls, mine.errors) == (1, 0)  # never the other's
    first.close()
    second.close()


def test_instances_given_one_registry_share_its_circuits(tmp_path: Path) -> None:
    shared = PolicyRegistries()
    first, _ = outage(tmp_path, shared)
    calls: list[str] = []
    second = system(tmp_path / "two", counting(calls, fail=False), shared)
    result = second.process("2 + 2 = ?")
    assert calls == []  # refused by the circuit the first instance opened
    assert [(v.voice, v.ok) for v in sorted(result.votes, key=lambda v: v.voice)] == [
        ("a", False),
        ("b", True),
    ]
    first.close()
    second.close()


def test_routing_skips_a_voice_whose_own_circuit_is_open(tmp_path: Path) -> None:
    """The router asks the circuit that guards the voice (here a configured key shared by
    two voices on one machine), in the instance's own registry."""
    registries = PolicyRegistries()
    breaker = registries.circuits.get("gpu-box", OPENS_AFTER_TWO, FakeClock())
    for _ in range(2):
        breaker.on_failure(breaker.acquire())
    calls: list[str] = []
    voices = [
        FunctionVoice(name, lambda r, n=name: calls.append(n) or "4") for name in ("a", "b", "c")
    ]
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "policies": {
            "voices": {v: {"circuit": {"key": "gpu-box"}} for v in ("a", "b")},
        },
        "routing": {"default": ["a", "b", "c"], "panel": 1},
    }
    system = AiOrchestration(cfg, voices=voices, registries=registries)
    result = system.process("2 + 2 = ?")
    assert calls == ["c"] and result.answer == "4"
    assert result.route is not None and result.route.skipped == (
        "'a' skipped: circuit 'gpu-box' is open",
        "'b' skipped: circuit 'gpu-box' is open",
    )
    system.close()
