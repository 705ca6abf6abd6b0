"""Per-request consensus types: a ``Vote`` from one voice and the fused ``Consensus``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Consensus", "Vote"]


@dataclass(frozen=True, slots=True)
class Vote:
    """One voice's answer to one request.

    ``confidence`` is the voice's own stated confidence in [0, 1]; ``distribution`` maps answers
    to probabilities when the voice gives one. ``error`` is set (and ``answer`` is None) when
    the voice failed, so failures stay visible in the result and the trace; ``abstained`` is
    True when it did not vote by its own choice (nothing to select among, input too long).
    """

    voice: str
    answer: Any
    confidence: float | None = None
    distribution: Mapping[str, float] | None = None
    error: str | None = None
    latency_s: float = 0.0
    cost_usd: float = 0.0
    abstained: bool = False  # the voice chose not to vote (``error`` says why), not a failure

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def valid(self) -> bool:
        """Counts as a vote: the voice answered something."""
        return self.error is None and self.answer is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"voice": self.voice, "answer": self.answer}
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.distribution is not None:
            out["distribution"] = dict(self.distribution)
        if self.error is not None:
            out["error"] = self.error
        if self.abstained:
            out["abstained"] = True
        return out


@dataclass(frozen=True, slots=True)
class Consensus:
    """The fused answer.

    ``confidence`` is the (calibrated) probability of ``answer``; ``distribution`` the fused
    distribution over candidate answers; ``weights`` each voice's weight; ``agreement`` the
    share of valid votes that chose ``answer``. ``abstained`` is True when confidence stayed
    below the threshold (then ``answer`` is None). ``explanation`` is what the trace records.
    """

    answer: Any
    confidence: float
    distribution: Mapping[str, float]
    weights: Mapping[str, float]
    agreement: float
    method: str
    votes: tuple[Vote, ...] = ()
    abstained: bool = False
    explanation: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "confidence": self.confidence,
            "distribution": dict(self.distribution),
            "weights": dict(self.weights),
            "agreement": self.agreement,
            "method": self.method,
            "abstained": self.abstained,
            "votes": [v.to_dict() for v in self.votes],
            "explanation": dict(self.explanation),
        }
