"""Typed span records. A span is a cheap slotted object; serialisation happens only in
processors that need it (the JSONL audit writer, OpenTelemetry export)."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai_orchestration.voices import Usage

__all__ = [
    "ConsensusSpanData",
    "HandoffSpanData",
    "RunSpanData",
    "Span",
    "SpanData",
    "SpanKind",
    "SpanStatus",
    "StepSpanData",
    "VoiceSpanData",
]

# Span ids are random 63-bit integers (OpenTelemetry's span-id width, positive for SQLite): unique
# across processes and restarts without coordination. The generator is seeded from the OS and
# reseeded in a forked child, which would otherwise repeat its parent's sequence.
_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))


def new_span_id() -> int:
    return _ids.getrandbits(63) or 1


class SpanKind(StrEnum):
    RUN = "run"
    STEP = "step"
    VOICE = "voice"
    CONSENSUS = "consensus"
    HANDOFF = "handoff"


class SpanStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class SpanData:
    """Base of the typed payloads; ``to_dict`` is called only when exporting."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        names: tuple[str, ...] = self.__slots__
        return {name: getattr(self, name) for name in names}


@dataclass(slots=True)
class RunSpanData(SpanData):
    workflow: str
    input: Any = None
    output: Any = None
    usage: dict[str, Any] | None = None


@dataclass(slots=True)
class StepSpanData(SpanData):
    step_kind: str
    input: Any = None
    output: Any = None
    attempt: int = 1
    path: str | None = None  # the step path of this execution ("outer/fanout[3]")


@dataclass(slots=True)
class VoiceSpanData(SpanData):
    voice: str
    model: str = ""
    prompt: Any = None
    output: Any = None
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class ConsensusSpanData(SpanData):
    method: str
    votes: list[Any] = field(default_factory=list)  # the Vote objects, as they arrived
    answer: Any = None
    confidence: float | None = None
    explanation: Any = None


@dataclass(slots=True)
class HandoffSpanData(SpanData):
    source: str
    targets: list[str]
    messages: int = 0
    delta: Any = None
    filters: list[str] = field(default_factory=list)


class Span:
    """One timed, typed record in a run's trace."""

    __slots__ = (
        "attributes",
        "data",
        "end_ns",
        "error",
        "kind",
        "name",
        "parent_id",
        "run_id",
        "span_id",
        "start_ns",
        "status",
    )

    def __init__(
        self, run_id: str, kind: SpanKind, name: str, data: SpanData, parent_id: int | None
    ) -> None:
        self.span_id = new_span_id()
        self.parent_id = parent_id
        self.run_id = run_id
        self.kind = kind
        self.name = name
        self.data = data
        self.status = SpanStatus.RUNNING
        self.error: str | None = None
        self.attributes: dict[str, Any] | None = None
        self.start_ns = time.perf_counter_ns()
        self.end_ns = 0

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9 if self.end_ns else 0.0

    def set(self, key: str, value: Any) -> None:
        """Attach an extra attribute (policy events, fallback used, …)."""
        if self.attributes is None:
            self.attributes = {}
        self.attributes[key] = value

    def __repr__(self) -> str:
        return f"<Span {self.kind}:{self.name} {self.status}>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "run_id": self.run_id,
            "kind": str(self.kind),
            "name": self.name,
            "status": str(self.status),
            "error": self.error,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": round((self.end_ns - self.start_ns) / 1e6, 4) if self.end_ns else None,
            "data": self.data.to_dict(),
            "attributes": self.attributes,
        }
