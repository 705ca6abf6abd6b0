"""Secrets stay out of what is shown and kept; text that only looks like a secret word stays
in. Redaction is decided by a field's role (content or identity), not by words in a name."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_orchestration import AiOrchestration, WorkflowBuilder
from ai_orchestration.config import load_config
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import (
    JsonlAuditProcessor,
    Span,
    SpanKind,
    VoiceSpanData,
    _processors,
    _redact,
    serialise_span,
)
from ai_orchestration.voices import Usage
from ai_orchestration.voices.registry import voice_from_spec

PASSWORD = "pw0userinfo0secret"
QUERY_KEY = "q0query0secret0value"
KEY_SHAPED = "sk-proj-ABCDEFGH12345678"


def state_bytes(state: Path) -> bytes:
    """Every byte under the state folder (SQLite file, its WAL, traces, reliabilities)."""
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())


def system(tmp_path: Path, voices: list[Any], **tracing: Any) -> AiOrchestration:
    cfg = {
        "state_dir": str(tmp_path / "state"),
        "consensus": {"method": "majority", "embed": "none"},
        "tracing": tracing,
    }
    return AiOrchestration(cfg, voices=voices)


def test_base_url_credentials_stay_out_of_votes_store_and_trace(tmp_path: Path) -> None:
    # Port 9 on loopback refuses the connection: the vote's error names the base URL.
    down = voice_from_spec(
        f"openai-compat:m@http://user:{PASSWORD}@127.0.0.1:9/v1?api_key={QUERY_KEY}",
        name="down",
    )
    with system(tmp_path, [down, FunctionVoice("up", lambda r: "Paris")]) as s:
        result = s.process("Capital of France?")
    error = next(v.error for v in result.votes if v.voice == "down")
    assert error is not None and "http://user:***@127.0.0.1:9/v1?api_key=***" in error
    shown = orjson.dumps(result.to_dict()) + repr(down).encode() + state_bytes(tmp_path / "state")
    assert PASSWORD.encode() not in shown and QUERY_KEY.encode() not in shown


def test_a_key_shaped_answer_is_redacted_also_as_a_distribution_key(tmp_path: Path) -> None:
    assert _redact.redact_secrets({KEY_SHAPED: 0.5}) == {"[REDACTED]": 0.5}
    voices = [FunctionVoice(n, lambda r: KEY_SHAPED) for n in ("a", "b")]
    with system(tmp_path, voices) as s:
        result = s.process("Say the key")
    assert KEY_SHAPED not in repr(result) and KEY_SHAPED.encode() not in orjson.dumps(
        result.to_dict()
    )
    assert KEY_SHAPED.encode() not in state_bytes(tmp_path / "state")


def test_config_repr_and_dumps_mask_keys_and_passwords() -> None:
    cfg = load_config(
        {
            "store": "postgresql://aio:dsn0password0x@db/app",
            "voices": [
                {
                    "spec": f"openai-compat:m@http://u:{PASSWORD}@h/v1?key={QUERY_KEY}",
                    "options": {"api_key": "plain0api0key0value", "headers": {"X-Api-Key": "hk0"}},
                }
            ],
        }
    )
    for shown in (repr(cfg), str(cfg), repr(cfg.model_dump()), cfg.model_dump_json()):
        for secret in ("dsn0password0x", PASSWORD, QUERY_KEY, "plain0api0key0value", "hk0"):
            assert secret not in shown, (secret, shown)
    assert "postgresql://aio:***@db/app" in repr(cfg)
    key = cfg.voices[0].options["api_key"]
    assert key.reveal() == "plain0api0key0value"  # the real value, for the request only
    assert cfg.store == "postgresql://aio:***@db/app"  # the field itself is masked
    assert cfg.store_url() == "postgresql://aio:dsn0password0x@db/app"  # for the connection


def test_redact_io_keeps_no_inputs_or_answers_in_the_store(tmp_path: Path) -> None:
    voices = [FunctionVoice(n, lambda r: "Private Answer") for n in ("a", "b")]
    with system(tmp_path, voices, redact_io=True) as s:
        result = s.process("a private question")
        s.feedback(result.run_id, "Private Answer")
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
    rows = db.execute("SELECT input, answer, votes FROM runs").fetchall()
    feedback = db.execute("SELECT answer FROM feedback").fetchall()
    db.close()
    assert [(orjson.loads(i), orjson.loads(a)) for i, a, _ in rows] == [
        ("[REDACTED]", "[REDACTED]")
    ]
    assert orjson.loads(rows[0][2]) == [
        {"voice": "a", "answer": None},
        {"voice": "b", "answer": None},
    ]
    assert [orjson.loads(f) for (f,) in feedback] == ["[REDACTED]"]
    assert b"rivate" not in state_bytes(tmp_path / "state")


def test_ordinary_words_and_fields_survive(tmp_path: Path) -> None:
    question = "What are bearer instruments?"
    assert _redact.redact_text(question) == question
    assert _redact.redact_secrets({"key": "C major", "token": "the"}) == {
        "key": "C major",
        "token": "the",
    }
    # credentials under the same ambiguous names are still masked
    assert _redact.redact_secrets({"key": "a1B2c3D4e5F6g7H8", "token": "x" * 24}) == {
        "key": "[REDACTED]",
        "token": "[REDACTED]",
    }
    voices = [FunctionVoice(n, lambda r: "Bonds") for n in ("a", "b")]
    with system(tmp_path, voices) as s:
        s.process({"prompt": question, "key": "C major"})
    kept = state_bytes(tmp_path / "state")
    assert question.encode() in kept and b'"key":"C major"' in kept


async def test_a_workflow_input_named_key_survives_in_the_audit(tmp_path: Path) -> None:
    async def echo(x: dict[str, str]) -> dict[str, str]:
        return x

    audit = JsonlAuditProcessor(tmp_path)
    wf = WorkflowBuilder("w").step("echo", echo).build()
    run = await wf.run(
        {"key": "C major", "title": "What are bearer instruments?"}, processors=[audit]
    )
    audit.flush()
    text = audit.path_for(run.run_id).read_bytes().decode()
    assert '"key":"C major"' in text and "What are bearer instruments?" in text


def test_usage_counts_do_not_send_a_voice_span_through_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    full = _redact.redact_secrets

    def counted(value: Any, extra: tuple[str, ...] = ()) -> Any:
        calls.append(value)
        return full(value, extra)

    monkeypatch.setattr(_redact, "redact_secrets", counted)
    monkeypatch.setattr(_processors, "redact_secrets", counted, raising=False)
    data = VoiceSpanData("v", "m", "Capital of France?", "Paris", Usage(12, 3, 0.0, 1), "stop")
    span = Span("run", SpanKind.VOICE, "v", data, 1)
    record = orjson.loads(serialise_span(span))
    assert record["data"]["usage"]["input_tokens"] == 12 and record["data"]["output"] == "Paris"
    assert calls == []  # "input_tokens" names a count: not content, not scanned
    data.output = f"my key is {KEY_SHAPED}"  # content with key material still is
    assert KEY_SHAPED.encode() not in serialise_span(span)


async def test_config_secrets_are_revealed_only_in_the_request() -> None:
    import httpx

    from ai_orchestration.config import build_voices, read_config
    from ai_orchestration.voices import VoiceRequest
    from ai_orchestration.voices._http import aclose_http_clients

    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        content = f"echo {request.headers['x-api-key']} {request.headers['authorization']}"
        message = {"role": "assistant", "content": content}
        return httpx.Response(200, json={"choices": [{"message": message}], "model": "m"})

    options = {"api_key": "ak0secret", "headers": {"X-Api-Key": "hk0secret"}}
    cfg, where = read_config(
        {"voices": [{"spec": "openai-compat:m@http://h/v1", "options": options}]}
    )
    (voice,) = build_voices(
        [
            cfg.voices[0].model_copy(
                update={
                    "options": {**cfg.voices[0].options, "transport": httpx.MockTransport(answer)}
                }
            )
        ],
        where,
    )
    response = await voice.respond(VoiceRequest.from_prompt("hi"))
    await aclose_http_clients()
    assert sent[0].headers["x-api-key"] == "hk0secret"
    assert sent[0].headers["authorization"] == "Bearer ak0secret"
    assert response.text == "echo [REDACTED] Bearer [REDACTED]"  # the echo is taken out
    held = repr(voice) + repr(vars(voice)) + repr(voice._http._headers)  # type: ignore[attr-defined]
    assert "hk0secret" not in held and "ak0secret" not in held
