"""The Store protocol and the record it persists for each run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["RunRecord", "Store", "VoiceCall"]

#: One finished voice call: (voice, latency in seconds, succeeded, cost in USD).
VoiceCall = tuple[str, float, bool, float]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What is kept of a run: enough to audit it and to learn from feedback later.
    ``calls`` are its voice calls, which keep per-voice statistics across processes."""

    run_id: str
    workflow: str
    input: Any
    answer: Any
    confidence: float
    abstained: bool
    votes: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    trace_path: str | None = None
    created_at: float = 0.0
    feedback: Any = None
    calls: list[VoiceCall] = field(default_factory=list)


class Store(Protocol):
    def record_run(self, record: RunRecord) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def record_feedback(self, run_id: str, correct_answer: Any) -> None: ...

    def recent_calls(self, per_voice: int) -> list[VoiceCall]: ...

    def close(self) -> None: ...
