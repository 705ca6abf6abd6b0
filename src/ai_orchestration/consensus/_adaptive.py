"""Adaptive ensembles: ask voices in order, stop as soon as more answers cannot matter.

Pure and synchronous: the engine calls :func:`decide` (or :func:`should_stop`) between waves
of voice calls. Under the one-coin model a vote for answer c adds w = log((K−1)·p/(1−p)) to
c's log-odds; the leader's posterior is softmax over the K candidates (answers no voice gave
score 0). Stop when the posterior reaches ``target``, or when the leader's margin over the
runner-up exceeds the summed |w| of the voices not yet asked (they cannot change the outcome).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ai_orchestration.consensus._base import NEUTRAL_ACCURACY, check_reliability, log_odds
from ai_orchestration.consensus._text import normalise
from ai_orchestration.consensus._types import Vote
from ai_orchestration.errors import InputError

__all__ = ["StopDecision", "decide", "order_voices", "should_stop"]


@dataclass(frozen=True, slots=True)
class StopDecision:
    """Whether to stop asking, why, and the current leader with its posterior."""

    stop: bool
    reason: str
    leader: Any
    posterior: float
    margin: float
    remaining_weight: float


def _weights(voices: Iterable[str], reliability: Mapping[str, float], k: int) -> dict[str, float]:
    names = list(voices)
    known = check_reliability(reliability)
    acc = np.asarray([known.get(v, NEUTRAL_ACCURACY) for v in names])
    return dict(zip(names, log_odds(acc, k).tolist(), strict=True))


def decide(
    votes_so_far: Iterable[Vote],
    remaining_voices: Iterable[str],
    reliability: Mapping[str, float] | None = None,
    *,
    target: float = 0.95,
    n_classes: int | None = None,
) -> StopDecision:
    """Decide whether the voices asked so far settle the answer.

    ``reliability`` maps voice → accuracy (voices absent get the neutral 2/3);
    ``n_classes`` is the number of possible answers (default: answers seen, at least 2).
    Failed votes are ignored.

    >>> decide([Vote("a", "x"), Vote("b", "x")], ["c"], {"a": 0.9, "b": 0.9}).stop
    True
    """
    if not 0.0 < target <= 1.0:
        raise InputError(f"target must be in (0, 1], got {target!r}")
    valid = [v for v in votes_so_far if v.valid]
    remaining = [r for r in remaining_voices if r not in {v.voice for v in valid}]
    keys = list(dict.fromkeys(normalise(v.answer) for v in valid))
    k = max(n_classes or 2, len(keys), 2)
    w = _weights([*(v.voice for v in valid), *remaining], reliability or {}, k)
    left = float(sum(abs(w[r]) for r in remaining))
    if not valid:
        reason = "no voices left" if not remaining else "no valid votes yet"
        return StopDecision(not remaining, reason, None, 1.0 / k, 0.0, left)
    scores = dict.fromkeys(keys, 0.0)
    for v in valid:
        scores[normalise(v.answer)] += w[v.voice]
    ranked = sorted(scores.values(), reverse=True) + [0.0] * (k - len(keys))
    lead_key = max(keys, key=lambda c: scores[c])
    leader = next(v.answer for v in valid if normalise(v.answer) == lead_key)
    top = ranked[0]
    posterior = 1.0 / sum(math.exp(s - top) for s in ranked)
    margin = top - ranked[1]
    if posterior >= target:
        return StopDecision(True, "target reached", leader, posterior, margin, left)
    if margin > left:
        return StopDecision(True, "outcome settled", leader, posterior, margin, left)
    if not remaining:
        return StopDecision(True, "no voices left", leader, posterior, margin, left)
    return StopDecision(False, "continue", leader, posterior, margin, left)


def should_stop(
    votes_so_far: Iterable[Vote],
    remaining_voices: Iterable[str],
    reliability: Mapping[str, float] | None = None,
    *,
    target: float = 0.95,
    n_classes: int | None = None,
) -> bool:
    """``decide(...).stop``: True once asking the remaining voices cannot pay off."""
    return decide(
        votes_so_far, remaining_voices, reliability, target=target, n_classes=n_classes
    ).stop


def order_voices(
    voices: Iterable[str],
    *,
    cost: Mapping[str, float],
    reliability: Mapping[str, float] | None = None,
    by: Literal["cost", "value"] = "value",
    n_classes: int = 2,
) -> list[str]:
    """Order voices for adaptive asking.

    ``by="cost"``: cheapest first (ties: more reliable first, then name). ``by="value"``:
    most evidence per unit cost first, evidence = |log-odds weight| of the voice's accuracy.
    Voices missing from ``cost`` cost 0.
    """
    names = list(voices)
    w = _weights(names, reliability or {}, max(n_classes, 2))

    def price(v: str) -> float:
        c = float(cost.get(v, 0.0))
        if not math.isfinite(c) or c < 0:
            raise InputError(f"cost of voice {v!r} must be a finite non-negative number")
        return c

    if by == "cost":
        return sorted(names, key=lambda v: (price(v), -w[v], v))
    return sorted(names, key=lambda v: (-abs(w[v]) / max(price(v), 1e-12), v))
