"""Structured (JSON object) answers fused field by field.

Each field is fused on its own among the voices that gave it (recursively for nested
objects). The result's ``confidence`` is the lowest field confidence; its ``distribution``
is {fused object as canonical JSON: confidence, "(other)": 1 − confidence}. The result
abstains when any field abstains (that field is None) or the confidence is under the threshold.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ai_orchestration.consensus._types import Consensus, Vote

__all__ = ["fuse_fields"]


def fuse_fields(
    all_votes: tuple[Vote, ...],
    valid: list[Vote],
    fuse_one: Callable[[list[Vote]], Consensus],
    *,
    abstain_below: float | None,
    method: str,
) -> Consensus:
    """Fuse mapping answers field by field with ``fuse_one``."""
    fields = list(dict.fromkeys(k for v in valid for k in v.answer))
    answer: dict[str, Any] = {}
    per_field: dict[str, Any] = {}
    confidence, abstained = 1.0, []
    for name in fields:
        sub = [Vote(v.voice, v.answer[name]) for v in valid if name in v.answer]
        result = fuse_one(sub)
        answer[str(name)] = result.answer
        per_field[str(name)] = {
            "answer": result.answer,
            "confidence": result.confidence,
            "distribution": dict(result.distribution),
            "voices": len(sub),
        }
        confidence = min(confidence, result.confidence)
        if result.abstained:
            abstained.append(str(name))
    reason = f"field(s) {', '.join(abstained)} abstained" if abstained else None
    if reason is None and abstain_below is not None and confidence < abstain_below:
        reason = f"confidence {confidence:.3f} below {abstain_below}"
    key = json.dumps(answer, sort_keys=True, default=str)
    weights = {v.voice: 1.0 for v in valid}
    agreement = sum(1 for v in valid if _same(v.answer, answer)) / len(valid)
    return Consensus(
        answer=None if reason else answer,
        confidence=confidence,
        distribution={key: confidence, "(other)": 1.0 - confidence},
        weights=weights,
        agreement=agreement,
        method=method,
        votes=all_votes,
        abstained=reason is not None,
        explanation={
            "method": method,
            "structured": True,
            "fields": per_field,
            "abstained": reason,
        },
    )


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    from ai_orchestration.consensus._text import normalise

    return normalise(dict(a)) == normalise(dict(b))
