"""Run traces: typed spans, processors (in-memory, JSONL audit), redaction."""

from ai_orchestration.tracing._processors import (
    InMemorySpanProcessor,
    JsonlAuditProcessor,
    serialise_span,
)
from ai_orchestration.tracing._redact import redact_secrets, redact_text
from ai_orchestration.tracing._spans import (
    ConsensusSpanData,
    HandoffSpanData,
    RunSpanData,
    Span,
    SpanData,
    SpanKind,
    SpanStatus,
    StepSpanData,
    VoiceSpanData,
)
from ai_orchestration.tracing._trace import BaseSpanProcessor, NoopTrace, SpanProcessor, Trace

__all__ = [
    "BaseSpanProcessor",
    "ConsensusSpanData",
    "HandoffSpanData",
    "InMemorySpanProcessor",
    "JsonlAuditProcessor",
    "NoopTrace",
    "RunSpanData",
    "Span",
    "SpanData",
    "SpanKind",
    "SpanProcessor",
    "SpanStatus",
    "StepSpanData",
    "Trace",
    "VoiceSpanData",
    "redact_secrets",
    "redact_text",
    "serialise_span",
]
