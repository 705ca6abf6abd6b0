"""Key material never appears in an error, a repr, a log line, a pickle or a serialised trace,
even when the provider echoes the key back in its own error message."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _wire import FAKE_KEY, PROVIDERS, Recorder, json_response, sse, sse_response

from ai_orchestration._runtime import RunState, call_voice, run_scope
from ai_orchestration.errors import AuthenticationError, ProviderUnavailableError, VoiceError
from ai_orchestration.tracing import (
    InMemorySpanProcessor,
    RunSpanData,
    SpanKind,
    Trace,
    serialise_span,
)
from ai_orchestration.voices import VoiceRequest
from ai_orchestration.voices._http import ApiKey, Secret, aclose_http_clients
from ai_orchestration.voices.openai_compat import OpenAICompatVoice

# Deliberately not shaped like any known key format: only literal scrubbing can catch it.
PLAIN_KEY = "plain0secret0value0that0matches0no0pattern"


def echoing(shape: str) -> Callable[[httpx.Request], httpx.Response]:
    """A provider that quotes the key it received back in its error (some do, partially).

    ``shape``: ``status`` answers 401; ``body`` puts the error envelope in a 200 body; ``stream``
    sends it as a server-sent event (Anthropic's shape, which also carries ``"error"``).
    """

    def answer(request: httpx.Request) -> httpx.Response:
        sent = (
            request.headers.get("authorization", "").removeprefix("Bearer ")
            or request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
        )
        msg = (
            f"Incorrect API key provided: {sent}. "
            f"Request {request.url} header {dict(request.headers)}"
        )
        if shape == "status":
            return json_response({"error": {"message": msg, "type": "invalid_request_error"}}, 401)
        envelope = {"type": "error", "error": {"message": msg, "type": "authentication_error"}}
        if shape == "body":
            return json_response(envelope)
        return sse_response(sse([envelope]))

    return answer


def _assert_clean(text: str) -> None:
    assert FAKE_KEY not in text
    assert PLAIN_KEY not in text
    assert "0secret0" not in text


async def _traced_failure(voice: Any) -> tuple[VoiceError, list[bytes]]:
    collected = InMemorySpanProcessor()
    trace = Trace("run-1", "wf", [collected])
    root = trace.start_span(SpanKind.RUN, "run", RunSpanData(workflow="wf"))
    state = RunState("run-1", trace)
    with run_scope(state, root), pytest.raises(VoiceError) as info:
        await call_voice(voice, VoiceRequest.from_prompt("hello"))
    trace.end_span(root)
    return info.value, [serialise_span(s) for s in trace.spans]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("key", [FAKE_KEY, PLAIN_KEY])
@pytest.mark.parametrize("source", ["argument", "environment"])
@pytest.mark.parametrize("shape", ["status", "body"])
async def test_key_never_leaks(
    provider: str,
    key: str,
    source: str,
    shape: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cls, env = PROVIDERS[provider].cls, PROVIDERS[provider].env
    caplog.set_level(logging.DEBUG)
    rec = Recorder(echoing(shape))
    if source == "environment":
        monkeypatch.setenv(env, key)
        voice = cls("model-x", transport=rec.transport)
    else:
        voice = cls("model-x", api_key=key, transport=rec.transport)

    err, lines = await _traced_failure(voice)

    assert isinstance(err, AuthenticationError)
    assert "Incorrect API key provided" in str(err)  # the provider's message is kept...
    _assert_clean(str(err))  # ...without the key
    _assert_clean(repr(err))
    _assert_clean(repr(err.args))
    _assert_clean(str(pickle.loads(pickle.dumps(err))))
    _assert_clean(repr(voice))
    _assert_clean(repr(vars(voice)) if hasattr(voice, "__dict__") else "")
    _assert_clean(repr(voice._http.key))
    _assert_clean(caplog.text)
    for line in lines:
        _assert_clean(line.decode())
    assert any(b"AuthenticationError" in x for x in lines)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("key", [FAKE_KEY, PLAIN_KEY])
async def test_key_never_leaks_from_a_stream_error_event(provider: str, key: str) -> None:
    voice = PROVIDERS[provider].cls(
        "model-x", api_key=key, transport=Recorder(echoing("stream")).transport
    )
    with pytest.raises(AuthenticationError) as info:
        async for _ in voice.stream(VoiceRequest.from_prompt("hello")):
            pass
    assert "Incorrect API key provided" in str(info.value)
    _assert_clean(str(info.value))
    _assert_clean(repr(info.value.args))
    _assert_clean(str(pickle.loads(pickle.dumps(info.value))))


async def test_key_never_in_transport_error_text() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused {request.headers['authorization']}")

    v = OpenAICompatVoice("m", api_key=PLAIN_KEY, transport=Recorder(fail).transport)
    with pytest.raises(VoiceError) as info:
        await v.respond(VoiceRequest.from_prompt("hi"))
    _assert_clean(str(info.value))


@pytest.mark.usefixtures("no_env_keys")
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_missing_key_names_the_variable(provider: str) -> None:
    cls, env = PROVIDERS[provider].cls, PROVIDERS[provider].env
    rec = Recorder(json_response({}))
    with pytest.raises(AuthenticationError, match=f"set the {env} environment variable"):
        await cls("m", transport=rec.transport).respond(VoiceRequest.from_prompt("hi"))
    assert rec.requests == []  # nothing was sent without a key


def test_secret_and_api_key_reprs_are_masked() -> None:
    s = Secret(PLAIN_KEY)
    assert s.reveal() == PLAIN_KEY
    _assert_clean(repr(s) + str(s) + f"{s}")
    _assert_clean(repr(ApiKey(header="x-api-key", value=s)))
    assert pickle.loads(pickle.dumps(s)) == s  # voices are rebuilt on other workers


async def test_voice_pickles_after_a_call_without_a_live_client() -> None:
    v = OpenAICompatVoice("gpt-4o-mini", api_key_env=None, base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ProviderUnavailableError):  # the call opened a pooled client
        await v.respond(VoiceRequest.from_prompt("hi"))
    clone = pickle.loads(pickle.dumps(v))  # a voice holding that client would not pickle
    assert (clone.name, clone.model, clone.base_url) == ("gpt-4o-mini", "gpt-4o-mini", v.base_url)
    await aclose_http_clients()
