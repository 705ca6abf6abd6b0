"""The Store protocol and the record it persists for each run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["RunRecord", "Store"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What is kept of a run: enough to audit it and to learn from feedback later."""

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


class Store(Protocol):
    def record_run(self, record: RunRecord) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def record_feedback(self, run_id: str, correct_answer: Any) -> None: ...

    def close(self) -> None: ...
