"""The Store protocol and the record it persists for each run."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ai_orchestration._encoding import encodable
from ai_orchestration.tracing._redact import REDACTED, may_hold_secrets, redact_secrets

__all__ = ["Counts", "RunRecord", "Store", "VoiceCall", "stored_answer", "to_json"]

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
    duration_s: float | None = None  # how long the run took (None: recorded before it was kept)

    @property
    def status(self) -> str:
        """``"error"`` (it failed), ``"abstained"`` or ``"ok"``."""
        return "error" if self.error is not None else "abstained" if self.abstained else "ok"

    def summary(self) -> dict[str, Any]:
        """What ``ai-orchestration runs list`` shows of the run: id, workflow, status, when it
        started (epoch seconds) and how long it took."""
        duration = self.duration_s
        started = self.created_at - duration if duration is not None else self.created_at
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "started": round(started, 3),
            "duration_s": None if duration is None else round(duration, 4),
        }

    def stored(self, *, redact_io: bool = False) -> RunRecord:
        """What a store keeps of this run: key material taken out of the input, the answer
        and the votes (as the audit log does); with ``redact_io`` the input, the answer and
        every vote's answer are dropped too (voices, confidences, errors and usage stay), so
        such a run cannot be scored by feedback later."""
        error = _clean(self.error)  # a failed run's error quotes voices' errors
        if redact_io:
            votes = [_vote_without_answer(v) for v in self.votes]
            answer = None if self.answer is None else REDACTED
            return dataclasses.replace(
                self, input=REDACTED, answer=answer, votes=_clean(votes), error=error
            )
        return dataclasses.replace(
            self,
            input=_clean(self.input),
            answer=_clean(self.answer),
            votes=_clean(self.votes),
            error=error,
        )

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
            self.duration_s,
        )


def _clean(value: Any) -> Any:
    """``value`` without key material (the same object when there is none)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    raw = to_json(value)
    return redact_secrets(orjson.loads(raw)) if may_hold_secrets(raw) else value


def _vote_without_answer(vote: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {k: vote[k] for k in ("voice", "confidence", "error") if k in vote}
    return {**kept, "answer": None}


def stored_answer(answer: Any, *, redact_io: bool) -> Any:
    """What a store keeps of a feedback answer."""
    return REDACTED if redact_io and answer is not None else _clean(answer)


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

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, workflow: str | None = None
    ) -> list[RunRecord]:
        """Recorded runs, newest first (``workflow`` only, when given); a page of ``limit``
        after skipping ``offset``. Records carry no calls and no feedback."""
        ...

    def close(self) -> None:
        """Release the connection; later calls raise StoreError. Closing twice is fine."""
        ...
