"""The Store protocol and the record it persists for each run."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ai_orchestration._encoding import encodable

__all__ = ["Counts", "RunRecord", "Store", "VoiceCall", "to_json"]

#: One finished voice call: (voice, latency in seconds, succeeded, cost in USD).
VoiceCall = tuple[str, float, bool, float]
#: Feedback counts per voice: voice → (votes found correct, votes found wrong).
Counts = Mapping[str, tuple[float, float]]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What is kept of a run: enough to audit it and to learn from feedback later.
    ``calls`` are its voice calls, which keep per-voice statistics across processes; a run
    that failed is kept too, with its ``error`` and the calls it made."""

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
    error: str | None = None  # why the run failed (then ``answer`` is None); None if it ran

    def row(self, encode: Callable[[Any], Any]) -> tuple[Any, ...]:
        """The ``runs`` columns in table order, JSON values through ``encode``."""
        return (
            self.run_id,
            self.workflow,
            self.created_at or time.time(),
            encode(self.input),
            encode(self.answer),
            self.confidence,
            self.abstained,
            encode(self.votes),
            encode(self.usage),
            self.trace_path,
            self.error,
        )


def to_json(value: Any) -> bytes:
    """How stores serialise values: JSON, anything JSON cannot hold as its ``repr``, text
    UTF-8 cannot hold (lone surrogates) backslash-escaped."""
    try:
        return orjson.dumps(value, default=repr)
    except TypeError:
        return orjson.dumps(encodable(value), default=repr)


class Store(Protocol):
    """Where runs, their voice calls and feedback persist. Implementations are safe to call
    from several threads; ``ai_orchestration.testing.check_store`` pins the semantics."""

    def record_run(self, record: RunRecord) -> None:
        """Keep the run and its calls, all or nothing; a recorded run id is a StoreError."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with its calls (in order) and its latest feedback; None if unknown."""
        ...

    def record_feedback(
        self, run_id: str, correct_answer: Any, counts: Counts | None = None
    ) -> None:
        """Keep the right answer for a recorded run and add ``counts`` (voice → correct,
        wrong) to the voices' totals, all or nothing; an unknown run id is a StoreError."""
        ...

    def reliability_counts(self) -> dict[str, tuple[float, float]]:
        """Every voice's (correct, wrong) totals over all feedback, from every writer."""
        ...

    def recent_calls(self, per_voice: int) -> list[VoiceCall]:
        """The last ``per_voice`` calls of every voice, oldest first."""
        ...

    def close(self) -> None:
        """Release the connection; later calls raise StoreError. Closing twice is fine."""
        ...
