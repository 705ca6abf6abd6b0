"""Record/replay cassettes for voices, and the network guard for tests.

Record a workflow's voice calls once against real providers, commit the cassette, and replay it
offline and deterministically ever after::

    cassette = Cassette("tests/cassettes/triage.jsonl")
    judge = cassette.wrap(voice_from_spec("openai:gpt-4o-mini"))   # records on a miss
    ...
    replay_only = Cassette("tests/cassettes/triage.jsonl", mode="replay").wrap(judge)

A cassette is a JSON-lines file, one call per line: the voice name, the request fingerprint, the
request and the response, with secrets stripped. Requests are matched on everything that shapes
the answer (messages, instructions, settings except the timeout, schema, tools, choices);
identical requests recorded several times replay in order.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from ai_orchestration.context import ToolCall
from ai_orchestration.errors import CassetteMissError, UserError
from ai_orchestration.tracing._redact import redact_secrets
from ai_orchestration.voices._http import network_guard
from ai_orchestration.voices._types import (
    StreamingVoice,
    Usage,
    Voice,
    VoiceDelta,
    VoiceRequest,
    VoiceResponse,
)

__all__ = [
    "Cassette",
    "CassetteVoice",
    "network_guard",
    "request_fingerprint",
]

Mode = Literal["auto", "record", "replay"]
_KEY_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")


def _request_dict(request: VoiceRequest) -> dict[str, Any]:
    settings = asdict(request.settings)
    settings.pop("timeout", None)  # how long we wait does not change the answer
    return {
        "messages": [m.to_dict() for m in request.messages],
        "instructions": request.instructions,
        "settings": settings,
        "response_schema": request.response_schema,
        "tools": [asdict(t) for t in request.tools],
        "choices": list(request.choices) if request.choices is not None else None,
    }


def _fingerprint(request_dict: dict[str, Any]) -> str:
    canonical = orjson.dumps(request_dict, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]


def request_fingerprint(request: VoiceRequest) -> str:
    """A stable hash of everything in ``request`` that shapes the answer."""
    return _fingerprint(_request_dict(request))


@dataclass(frozen=True, slots=True)
class _Call:
    """One voice call as the cassette keys it, worked out once per call."""

    voice: str
    request: VoiceRequest
    data: dict[str, Any]
    fingerprint: str

    @classmethod
    def of(cls, voice: str, request: VoiceRequest) -> _Call:
        data = _request_dict(request)
        return cls(voice, request, data, _fingerprint(data))

    @property
    def key(self) -> tuple[str, str]:
        return self.voice, self.fingerprint


def _response_dict(response: VoiceResponse, keep_raw: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": response.text,
        "usage": response.usage.to_dict(),
        "model": response.model,
        "finish_reason": response.finish_reason,
        "latency_s": response.latency_s,
        "parsed": response.parsed,
        "tool_calls": [asdict(c) for c in response.tool_calls],
        "distribution": dict(response.distribution) if response.distribution else None,
        "confidence": response.confidence,
    }
    if keep_raw:
        out["raw"] = response.raw
    return out


def _response_from(data: dict[str, Any]) -> VoiceResponse:
    u = data.get("usage") or {}
    return VoiceResponse(
        text=data["text"],
        usage=Usage(
            u.get("input_tokens", 0),
            u.get("output_tokens", 0),
            u.get("cost_usd", 0.0),
            u.get("calls", 1),
        ),
        model=data.get("model", ""),
        finish_reason=data.get("finish_reason"),
        latency_s=data.get("latency_s", 0.0),
        parsed=data.get("parsed"),
        tool_calls=tuple(ToolCall(**c) for c in data.get("tool_calls") or ()),
        distribution=data.get("distribution"),
        confidence=data.get("confidence"),
        raw=data.get("raw"),
    )


def _env_secrets() -> tuple[str, ...]:
    return tuple(
        v for k, v in os.environ.items() if k.upper().endswith(_KEY_SUFFIXES) and len(v) >= 8
    )


class Cassette:
    """One cassette file shared by any number of wrapped voices.

    ``mode``: ``auto`` replays what it has and records misses (when the wrapped voice is
    real); ``replay`` never calls the wrapped voice and raises ``CassetteMissError`` on a miss;
    ``record`` always calls the voice and records, replacing earlier recordings of the same
    requests. ``keep_raw`` also stores the provider's raw payload (redacted).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, mode: Mode = "auto", keep_raw: bool = False
    ) -> None:
        if mode not in ("auto", "record", "replay"):
            raise ValueError(f"mode must be 'auto', 'record' or 'replay', got {mode!r}")
        self.path = Path(path)
        self.mode: Mode = mode
        self.keep_raw = keep_raw
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lines: dict[tuple[str, str], list[bytes]] = {}  # the file's lines, by key
        self._cursor: dict[tuple[str, str], int] = {}
        self._replaced: set[tuple[str, str]] = set()
        if self.path.exists():
            self._load()

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r}, calls={len(self)})"

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def _load(self) -> None:
        for lineno, line in enumerate(self.path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                key = (entry["voice"], entry["fingerprint"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError(f"{self.path}:{lineno}: not a cassette entry ({exc})") from None
            self._entries.setdefault(key, []).append(entry["response"])
            self._lines.setdefault(key, []).append(line + b"\n")

    def wrap(self, voice: Voice | None, *, name: str | None = None) -> CassetteVoice:
        """A voice that answers from this cassette (``voice`` may be None for replay only)."""
        return CassetteVoice(voice, self, name=name)

    def lookup(self, voice: str, request: VoiceRequest) -> VoiceResponse | None:
        """The next recorded answer of ``voice`` to ``request``, or None."""
        return self._lookup(_Call.of(voice, request))

    def record(self, voice: str, request: VoiceRequest, response: VoiceResponse) -> None:
        """Store one call (secrets stripped) and append it to the file at once."""
        self._record(_Call.of(voice, request), response)

    def miss(self, voice: str, request: VoiceRequest) -> CassetteMissError:
        """The error for a request this cassette has no answer to."""
        return self._miss(_Call.of(voice, request))

    def _lookup(self, call: _Call) -> VoiceResponse | None:
        key = call.key
        with self._lock:
            recorded = self._entries.get(key)
            if not recorded or self.mode == "record":
                return None
            i = self._cursor.get(key, 0)
            self._cursor[key] = i + 1
            return _response_from(recorded[min(i, len(recorded) - 1)])

    def _record(self, call: _Call, response: VoiceResponse) -> None:
        key = call.key
        secrets = _env_secrets()
        entry = {
            "voice": call.voice,
            "fingerprint": call.fingerprint,
            "request": redact_secrets(call.data, secrets),
            "response": redact_secrets(_response_dict(response, self.keep_raw), secrets),
        }
        line = orjson.dumps(entry, default=str) + b"\n"
        with self._lock:
            if self.mode == "record" and key not in self._replaced:
                self._replaced.add(key)
                self._entries[key] = []
                if self._lines.pop(key, None):  # drop the earlier recordings from the file
                    self._rewrite()
            self._entries.setdefault(key, []).append(entry["response"])
            self._lines.setdefault(key, []).append(line)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                f.write(line)

    def _rewrite(self) -> None:
        """Replace the file with the lines kept in memory, atomically (never half-written)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(b"".join(b"".join(v) for v in self._lines.values()))
        os.replace(tmp, self.path)

    def _miss(self, call: _Call) -> CassetteMissError:
        return CassetteMissError(
            f"cassette {self.path} has no recorded call of voice {call.voice!r} for this request "
            f"(fingerprint {call.fingerprint}, prompt {call.request.prompt[:80]!r}); record it "
            "with mode='auto' or 'record' and a real voice",
            voice=call.voice,
            fingerprint=call.fingerprint,
        )


class CassetteVoice:
    """A voice answering from a :class:`Cassette`, recording through ``voice`` on a miss."""

    def __init__(
        self,
        voice: Voice | None,
        cassette: Cassette | str | os.PathLike[str],
        *,
        name: str | None = None,
    ) -> None:
        if voice is None and name is None:
            raise ValueError("a replay-only CassetteVoice needs a name")
        self.inner = voice
        self.cassette = cassette if isinstance(cassette, Cassette) else Cassette(cassette)
        self._name = name or (voice.name if voice is not None else "")

    @property
    def name(self) -> str:
        return self._name

    @property
    def picks_among_answers(self) -> bool:
        """Whether the wrapped voice only picks among given answers (consensus asks it last)."""
        return getattr(self.inner, "picks_among_answers", False) is True

    def __repr__(self) -> str:
        return f"CassetteVoice({self._name!r}, {self.cassette!r})"

    def _inner_or_miss(self, call: _Call) -> Voice:
        if self.inner is None or self.cassette.mode == "replay":
            raise self.cassette._miss(call)
        return self.inner

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        call = _Call.of(self._name, request)
        hit = self.cassette._lookup(call)
        if hit is not None:
            return hit
        response = await self._inner_or_miss(call).respond(request)
        self.cassette._record(call, response)
        return response

    async def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]:
        """Replays a recorded answer as one delta; records a streamed answer as a response."""
        call = _Call.of(self._name, request)
        hit = self.cassette._lookup(call)
        if hit is None:
            inner = self._inner_or_miss(call)
            hit = await _collect(inner, request)
            self.cassette._record(call, hit)
        if hit.text:
            yield VoiceDelta(text=hit.text)
        yield VoiceDelta(finish_reason=hit.finish_reason, usage=hit.usage)


async def _collect(voice: Voice, request: VoiceRequest) -> VoiceResponse:
    if not isinstance(voice, StreamingVoice):
        return await voice.respond(request)
    parts: list[str] = []
    final = VoiceDelta()
    async for delta in voice.stream(request):
        parts.append(delta.text)
        if delta.finish_reason is not None or delta.usage is not None:
            final = delta
    return VoiceResponse(
        text="".join(parts),
        usage=final.usage or Usage(calls=1),
        finish_reason=final.finish_reason,
    )
