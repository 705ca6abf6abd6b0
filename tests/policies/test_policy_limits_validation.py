from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from ai_orchestration.errors import MalformedResponseError, RateLimitedError
from ai_orchestration.policies import (
    RateLimiter,
    RateLimitPolicy,
    RateLimits,
    TokenBucket,
    ValidationPolicy,
    check_schema,
    parse_json,
    with_policies,
)
from ai_orchestration.testing import FakeClock, FunctionVoice, ScriptedVoice
from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse, VoiceSettings

REQ = VoiceRequest.from_prompt("q")
SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "enum": ["A", "B"]}},
    "additionalProperties": False,
}


def test_token_bucket_reserves_into_debt_and_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=2, clock=clock)
    assert bucket.reserve(1) == 0 and bucket.reserve(1) == 0
    assert bucket.reserve(1) == 1.0
    assert bucket.reserve(1) == 2.0
    clock.advance(2.0)
    assert bucket.reserve(0) == 0 and bucket.tokens == 0


async def test_requests_per_minute_waits_on_the_clock() -> None:
    clock = FakeClock()
    policy = RateLimitPolicy(RateLimits(requests_per_minute=2), key="prov", clock=clock)
    voice = with_policies(ScriptedVoice("prov:m", ["1", "2", "3"]), policy)
    for _ in range(3):
        await voice.respond(REQ)
    assert clock.sleeps == [30.0]


async def test_limits_are_shared_per_provider_key() -> None:
    clock = FakeClock()
    policy = RateLimitPolicy(RateLimits(requests_per_minute=1, max_wait_s=5), clock=clock)
    a = with_policies(ScriptedVoice("openai:a", ["1"]), policy)
    b = with_policies(ScriptedVoice("openai:b", ["never"]), policy)
    await a.respond(REQ)
    with pytest.raises(RateLimitedError) as info:
        await b.respond(REQ)
    assert info.value.retry_after == 60.0 and info.value.voice == "openai"
    limiter = policy.registry.get("openai", RateLimits())  # the policy's own registry
    assert limiter.requests is not None and limiter.requests.tokens == 0  # refunded


async def test_tokens_per_minute_uses_estimate_then_actual_usage() -> None:
    clock = FakeClock()
    used = VoiceResponse("x", usage=Usage(input_tokens=5, output_tokens=5, calls=1))
    policy = RateLimitPolicy(RateLimits(tokens_per_minute=600), key="p", clock=clock)
    voice = with_policies(ScriptedVoice("p", [used]), policy)
    req = VoiceRequest.from_prompt("abcd" * 10, settings=VoiceSettings(max_tokens=100))
    await voice.respond(req)
    limiter = policy.registry.get("p", RateLimits())
    assert limiter.tokens is not None and limiter.tokens.tokens == 590


async def test_concurrency_cap() -> None:
    in_flight = peak = 0

    async def work(_: VoiceRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return "ok"

    voice = with_policies(FunctionVoice("p", work), RateLimitPolicy(RateLimits(max_concurrency=2)))
    async with asyncio.TaskGroup() as tg:
        for _ in range(6):
            tg.create_task(voice.respond(REQ))
    assert peak == 2


def test_check_schema_reports_the_path() -> None:
    assert check_schema({"answer": "A"}, SCHEMA) is None
    assert check_schema({"answer": "C"}, SCHEMA) == "$.answer: 'C' is not one of ['A', 'B']"
    assert check_schema({"answer": "A", "x": 1}, SCHEMA) == "$: unexpected property 'x'"
    assert check_schema([1, "2"], {"type": "array", "items": {"type": "integer"}}) == (
        "$[1]: expected integer, got str"
    )
    assert check_schema(True, {"type": "number"}) == "$: expected number, got bool"
    assert check_schema(5, {"type": "integer", "maximum": 4}) == "$: 5 > maximum 4"
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}


async def test_invalid_json_is_re_asked_once_then_parsed() -> None:
    inner = ScriptedVoice("v", ["<html>502</html>", '{"answer": "B"}'])
    voice = with_policies(inner, ValidationPolicy(SCHEMA, max_reasks=1))
    out = await voice.respond(REQ)
    assert out.parsed == {"answer": "B"}
    reask = inner.requests[1].messages
    assert [m.role for m in reask] == ["user", "assistant", "user"]
    assert reask[1].content == "<html>502</html>"
    assert "invalid" in reask[2].content


async def test_still_invalid_after_bounded_reasks_raises_malformed() -> None:
    inner = ScriptedVoice("v", ["no", "still no", "never asked"])
    voice = with_policies(inner, ValidationPolicy(SCHEMA, max_reasks=1))
    with pytest.raises(MalformedResponseError, match="after 2 attempt"):
        await voice.respond(REQ)
    assert len(inner.requests) == 2


async def test_custom_validator_and_request_schema() -> None:
    def one_word(r: VoiceResponse) -> str | None:
        return None if r.text.isalpha() else "one word please"

    voice = with_policies(
        ScriptedVoice("v", ["two words", "Paris"]), ValidationPolicy(validator=one_word)
    )
    assert (await voice.respond(REQ)).text == "Paris"
    schema_req = VoiceRequest.from_prompt("q", response_schema={"type": "integer"})
    voice2 = with_policies(ScriptedVoice("v", ["7"]), ValidationPolicy())
    assert (await voice2.respond(schema_req)).parsed == 7


def test_repeated_asyncio_run_keeps_no_concurrency_cap_of_old_loops() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    limiter = RateLimiter("p", RateLimits(max_concurrency=1))

    async def contend() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        sem = limiter.semaphore()
        assert sem is not None

        async def hold() -> None:
            async with sem:  # the second waiter binds the semaphore to this loop
                await asyncio.sleep(0)

        await asyncio.gather(hold(), hold())

    for _ in range(5):
        asyncio.run(contend())
    gc.collect()
    assert [r() is None for r in loops[:-1]] == [True] * 4  # only the latest may stay cached
