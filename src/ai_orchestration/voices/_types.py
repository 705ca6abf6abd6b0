"""The voice plug point: one async method, provider-neutral request and response types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ai_orchestration.context import Message, MessageHistory, ToolCall

__all__ = [
    "StreamingVoice",
    "ToolSpec",
    "Usage",
    "Voice",
    "VoiceDelta",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceSettings",
    "estimate_input_tokens",
    "estimate_tokens",
]


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Sampling and call settings; ``None`` means "the voice's default"."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    timeout: float | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VoiceRequest:
    """What a voice is asked.

    ``choices``, when given, asks the voice to pick one of them (multiple choice); voices that
    can score options (local LLMs) return a ``distribution`` over them. ``response_schema``
    asks for structured JSON output matching that JSON schema.
    """

    messages: Sequence[Message]
    instructions: str | None = None
    settings: VoiceSettings = VoiceSettings()
    response_schema: Mapping[str, Any] | None = None
    tools: tuple[ToolSpec, ...] = ()
    choices: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_prompt(cls, prompt: str, **kwargs: Any) -> VoiceRequest:
        return cls(messages=(Message("user", prompt),), **kwargs)

    @property
    def prompt(self) -> str:
        """The last user message's text (what simple voices answer)."""
        if isinstance(self.messages, MessageHistory):  # a context's view knows it in O(1)
            last = self.messages.last_user
            return "" if last is None else last.content
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


def estimate_input_tokens(request: VoiceRequest) -> int:
    """A cheap upper-ish estimate of a request's input tokens: ~4 characters per token."""
    chars = sum(len(m.content) for m in request.messages) + len(request.instructions or "")
    return chars // 4 + 1


def estimate_tokens(request: VoiceRequest) -> int:
    """``estimate_input_tokens`` plus the requested output limit (0 when none is set)."""
    return estimate_input_tokens(request) + (request.settings.max_tokens or 0)


@dataclass(slots=True)
class Usage:
    """Tokens and cost. Adds up: ``a + b``; ``calls`` counts voice calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.calls += other.calls

    def __add__(self, other: Usage) -> Usage:
        out = Usage(self.input_tokens, self.output_tokens, self.cost_usd, self.calls)
        out.add(other)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "calls": self.calls,
        }


@dataclass(frozen=True, slots=True)
class VoiceResponse:
    """A voice's answer.

    ``text`` is the answer as text; ``parsed`` the structured value when a schema was asked;
    ``distribution`` maps options to probabilities when the voice scored ``choices``;
    ``confidence`` is the voice's own (uncalibrated) confidence in ``text`` when it has one.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0
    parsed: Any = None
    tool_calls: tuple[ToolCall, ...] = ()
    distribution: Mapping[str, float] | None = None
    confidence: float | None = None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class VoiceDelta:
    """One streamed piece of a response; the final delta carries ``usage``/``finish_reason``."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@runtime_checkable
class Voice(Protocol):
    """Anything that answers a request: a cloud LLM, a local model, a classifier, a function.

    ``name`` is unique within an orchestrator and appears in votes and traces.
    """

    @property
    def name(self) -> str: ...

    async def respond(self, request: VoiceRequest) -> VoiceResponse: ...


@runtime_checkable
class StreamingVoice(Voice, Protocol):
    """A voice that can also stream its answer."""

    def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]: ...
