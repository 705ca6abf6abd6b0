"""Budgets reserve before a call starts: calls exactly, tokens and cost by an estimate."""

from __future__ import annotations

from typing import Any

import pytest

from ai_orchestration import BudgetExceededError, WorkflowBuilder
from ai_orchestration._runtime import Budget, estimate_usage
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import Usage, VoiceRequest, VoiceSettings
from ai_orchestration.voices.openai_compat import OpenAICompatVoice


class PricedVoice(FunctionVoice):
    """A fake voice that says what a call may cost, and reports what it did cost."""

    def __init__(self, name: str, *, estimate: float, cost: float) -> None:
        super().__init__(name, self._answer, delay=0.05)
        self.estimate, self.cost = estimate, cost

    def _answer(self, request: VoiceRequest) -> Any:
        from ai_orchestration.voices import VoiceResponse

        return VoiceResponse(text="x", usage=Usage(10, 5, self.cost, 1))

    def estimate_usage(self, request: VoiceRequest) -> Usage:
        return Usage(10, 5, self.estimate, 1)


def _consensus(voices: list[Any]) -> Any:
    return WorkflowBuilder("w").consensus("c", voices, method="majority").build()


async def test_max_calls_counts_the_calls_in_flight() -> None:
    voices = [FunctionVoice(n, lambda r: "x", delay=0.05) for n in "abc"]
    with pytest.raises(BudgetExceededError) as info:
        await _consensus(voices).run("q", budget=Budget(max_calls=1), run_id="r1")
    assert str(info.value) == "run r1: voice-call budget of 1 used up (1 call(s) in flight)"
    assert sum(v.calls for v in voices) == 1  # the old check let all three start


async def test_a_budget_that_fits_every_call_lets_them_all_run() -> None:
    voices = [FunctionVoice(n, lambda r: "x", delay=0.05) for n in "abc"]
    run = await _consensus(voices).run("q", budget=Budget(max_calls=3))
    assert run.output.answer == "x" and run.usage.calls == 3


async def test_cost_is_reserved_by_estimate_and_settled_by_the_real_cost() -> None:
    voices = [PricedVoice(n, estimate=0.02, cost=0.001) for n in "abc"]
    with pytest.raises(BudgetExceededError) as info:
        await _consensus(voices).run("q", budget=Budget(max_cost_usd=0.05), run_id="r2")
    assert info.value.budget == "cost_usd"
    assert str(info.value) == (
        "run r2: cost budget $0.05 would be exceeded: $0.000000 used, $0.040000 reserved by "
        "calls in flight, the next call may cost $0.020000"
    )
    assert sum(v.calls for v in voices) == 2  # 2 × $0.02 fit in $0.05, a third might not
    # Sequentially, each call's reservation is settled by its real cost ($0.001).
    chain = WorkflowBuilder("seq").step("s1", voices[0]).step("s2", voices[1]).build()
    run = await chain.run("q", budget=Budget(max_cost_usd=0.021))
    assert run.usage.calls == 2 and run.usage.cost_usd == pytest.approx(0.002)


async def test_tokens_are_reserved_from_the_request() -> None:
    # 40 characters ~ 11 tokens, plus max_tokens = 100: 111 tokens may be used.
    request = VoiceRequest.from_prompt("x" * 40, settings=VoiceSettings(max_tokens=100))
    voice = FunctionVoice("a", lambda r: "x")
    assert estimate_usage(voice, request) == Usage(11 + 100, 0, 0.0, 1)
    wf = WorkflowBuilder("w").step("s", voice).build()
    with pytest.raises(BudgetExceededError, match="token budget 110 would be exceeded"):
        await wf.run(request, budget=Budget(max_tokens=110))
    assert voice.calls == 0
    assert (await wf.run(request, budget=Budget(max_tokens=111))).output.text == "x"


def test_an_http_voice_estimates_its_cost_from_the_price_table() -> None:
    voice = OpenAICompatVoice("gpt-4o-mini", api_key="sk-test-not-a-key")
    request = VoiceRequest.from_prompt("x" * 400, settings=VoiceSettings(max_tokens=100))
    # 101 input tokens at $0.15/M + 100 output tokens at $0.60/M
    assert voice.estimate_usage(request) == Usage(101, 100, pytest.approx(7.515e-05), 1)
    no_limit = VoiceRequest.from_prompt("x" * 400)
    assert voice.estimate_usage(no_limit).output_tokens == 1024  # ASSUMED_OUTPUT_TOKENS


def test_an_openai_model_on_a_loopback_server_costs_nothing() -> None:
    voice = OpenAICompatVoice("gpt-4o-mini", base_url="http://127.0.0.1:8080/v1")
    request = VoiceRequest.from_prompt("x" * 400, settings=VoiceSettings(max_tokens=100))
    assert voice.estimate_usage(request) == Usage(101, 100, 0.0, 1)
