"""Adaptive ensembles: ask voices in order, stop as soon as more answers cannot matter.

Pure and synchronous: the engine calls :func:`decide` (or :func:`should_stop`) between waves
of voice calls. Every voice has a confusion matrix C[true, answer]; the posterior is
P(y=k | votes) ∝ π_k · Π_i C_i[k, answer_i]. With a voice → accuracy mapping (one-coin) the
confusions are symmetric and π uniform, so a vote for c adds w = log((K−1)·p/(1−p)) to c's
log-odds; with a fitted :class:`BayesianFusion` they are its learned confusions and class
prior. Stop when the leader's posterior reaches ``target``, or when no answers of the voices
not yet asked could lift any other candidate over the leader: for each challenger c, the
leader's log-odds margin over c exceeds the sum over remaining voices of
max_answer log(C[c, answer] / C[leader, answer]) (for one-coin voices, their |w|).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._base import NEUTRAL_ACCURACY, check_reliability, log_odds
from ai_orchestration.consensus._bayes import extend_confusion, symmetric_confusion
from ai_orchestration.consensus._data import parse_votes
from ai_orchestration.consensus._dependence import DEFAULT_MIN_OVERLAP, co_votes
from ai_orchestration.consensus._text import normalise
from ai_orchestration.consensus._types import Vote
from ai_orchestration.errors import InputError

__all__ = [
    "ConfusionModel",
    "StopDecision",
    "decide",
    "order_voices",
    "redundant_pairs",
    "should_stop",
]

FloatArray = npt.NDArray[np.float64]
_P_CLIP = 1e-3  # as log_odds: no voice is trusted absolutely
_TIE = 1e-9  # a challenger that could draw level is not beaten (log rounding aside)


class ConfusionModel(Protocol):
    """A fitted aggregator exposing per-voice confusions, e.g. :class:`BayesianFusion`."""

    @property
    def labels_(self) -> list[Any]: ...
    @property
    def voices_(self) -> list[str]: ...
    @property
    def class_prior_(self) -> FloatArray: ...
    def confusion(self, voice: str) -> dict[Any, dict[Any, float]]: ...


Reliability = Mapping[str, float] | ConfusionModel | None


@dataclass(frozen=True, slots=True)
class StopDecision:
    """Whether to stop asking, why, and the current leader with its posterior.

    ``leader`` is None when no valid vote came yet, or when an answer nobody gave leads.
    ``margin`` is the leader's log-odds lead over its closest challenger and
    ``remaining_weight`` the most the voices not yet asked could swing towards that challenger.
    """

    stop: bool
    reason: str
    leader: Any
    posterior: float
    margin: float
    remaining_weight: float


@dataclass(frozen=True, slots=True)
class _Evidence:
    """Candidates (normalised keys; None for an answer no voice gave) and log-probabilities."""

    keys: list[str | None]
    labels: list[Any]  # the fitted label of each candidate, else None
    log_prior: FloatArray
    log_conf: dict[str, FloatArray]  # voice -> log C[true, answer] over the candidates


def _one_coin(
    keys: list[str], voices: list[str], reliability: Mapping[str, float], k: int
) -> _Evidence:
    known = check_reliability(reliability)
    cands: list[str | None] = [*keys, *([None] * (k - len(keys)))]
    log_conf = {}
    for v in voices:
        p = float(np.clip(known.get(v, NEUTRAL_ACCURACY), _P_CLIP, 1 - _P_CLIP))
        log_conf[v] = np.log(symmetric_confusion(p, k))
    return _Evidence(cands, [None] * k, np.full(k, -math.log(k)), log_conf)


def _fitted(keys: list[str], voices: list[str], model: ConfusionModel, k_min: int) -> _Evidence:
    if not getattr(model, "fitted_", True) or not model.labels_:
        raise InputError(f"reliability model {type(model).__name__} is not fitted")
    fitted_keys = [normalise(label) for label in model.labels_]
    cands: list[str | None] = [*fitted_keys, *(c for c in keys if c not in fitted_keys)]
    k = max(k_min, len(cands), 2)
    cands += [None] * (k - len(cands))
    labels = [*model.labels_, *([None] * (k - len(model.labels_)))]
    fitted = set(model.voices_)
    log_conf = {}
    for v in voices:
        if v in fitted:
            rows = model.confusion(v)
            mat = np.asarray([[rows[t][a] for a in model.labels_] for t in model.labels_])
            log_conf[v] = np.log(extend_confusion(mat, k))
        else:
            log_conf[v] = np.log(symmetric_confusion(NEUTRAL_ACCURACY, k))
    prior = np.full(k, float(np.min(model.class_prior_)))
    prior[: len(model.labels_)] = model.class_prior_
    return _Evidence(cands, labels, np.log(prior / prior.sum()), log_conf)


def _evidence(
    keys: list[str], voices: list[str], reliability: Reliability, n_classes: int | None
) -> _Evidence:
    if reliability is None or isinstance(reliability, Mapping):
        k = max(n_classes or 2, len(keys), 2)
        return _one_coin(keys, voices, reliability or {}, k)
    return _fitted(keys, voices, reliability, n_classes or 0)


def decide(
    votes_so_far: Iterable[Vote],
    remaining_voices: Iterable[str],
    reliability: Reliability = None,
    *,
    target: float = 0.95,
    n_classes: int | None = None,
) -> StopDecision:
    """Decide whether the voices asked so far settle the answer.

    ``reliability`` maps voice → accuracy (voices absent get the neutral 2/3), or is a fitted
    :class:`BayesianFusion` (its confusions pooled over confidence bins and its class prior,
    at temperature 1; unknown voices get the neutral symmetric confusion, unseen answers join
    the candidates).
    ``n_classes`` is the number of possible answers (default: answers known, at least 2).
    Failed votes are ignored.

    >>> decide([Vote("a", "x"), Vote("b", "x")], ["c"], {"a": 0.9, "b": 0.9}).stop
    True
    """
    if not 0.0 < target <= 1.0:
        raise InputError(f"target must be in (0, 1], got {target!r}")
    valid = [v for v in votes_so_far if v.valid]
    remaining = [r for r in remaining_voices if r not in {v.voice for v in valid}]
    voted = [normalise(v.answer) for v in valid]
    keys = list(dict.fromkeys(voted))
    ev = _evidence(keys, [*(v.voice for v in valid), *remaining], reliability, n_classes)
    index: dict[str | None, int] = {}
    for i, c in enumerate(ev.keys):
        index.setdefault(c, i)
    scores = ev.log_prior.copy()
    for v, key in zip(valid, voted, strict=True):
        scores += ev.log_conf[v.voice][:, index[key]]
    lead = int(np.argmax(scores))
    # the most each challenger c can gain on the leader from the remaining voices' answers
    swing = sum(
        ((ev.log_conf[r] - ev.log_conf[r][lead]).max(axis=1) for r in remaining),
        np.zeros(len(scores)),
    )
    slack = scores[lead] - scores - swing
    slack[lead] = math.inf
    rival = int(np.argmin(slack))
    margin, left = float(scores[lead] - scores[rival]), float(swing[rival])
    posterior = float(1.0 / np.exp(scores - scores[lead]).sum())
    if not valid:
        reason = "no voices left" if not remaining else "no valid votes yet"
        return StopDecision(not remaining, reason, None, posterior, 0.0, left)
    leader = _leader(ev, lead, valid, voted)
    if posterior >= target:
        return StopDecision(True, "target reached", leader, posterior, margin, left)
    if slack[rival] > _TIE:
        return StopDecision(True, "outcome settled", leader, posterior, margin, left)
    if not remaining:
        return StopDecision(True, "no voices left", leader, posterior, margin, left)
    return StopDecision(False, "continue", leader, posterior, margin, left)


def _leader(ev: _Evidence, lead: int, valid: list[Vote], voted: list[str]) -> Any:
    """The first raw answer voted for the leading candidate, else its fitted label."""
    key = ev.keys[lead]
    return next((v.answer for v, k in zip(valid, voted, strict=True) if k == key), ev.labels[lead])


def should_stop(
    votes_so_far: Iterable[Vote],
    remaining_voices: Iterable[str],
    reliability: Reliability = None,
    *,
    target: float = 0.95,
    n_classes: int | None = None,
) -> bool:
    """``decide(...).stop``: True once asking the remaining voices cannot pay off."""
    return decide(
        votes_so_far, remaining_voices, reliability, target=target, n_classes=n_classes
    ).stop


def _information(voices: list[str], model: ConfusionModel) -> dict[str, float]:
    """Mutual information (nats) between each voice's answer and the truth, under the prior."""
    ev = _fitted([], voices, model, 0)
    prior = np.exp(ev.log_prior)
    out = {}
    for v, log_c in ev.log_conf.items():
        joint = prior[:, None] * np.exp(log_c)
        answer = joint.sum(axis=0)
        out[v] = float((joint * (log_c - np.log(answer))).sum())
    return out


def redundant_pairs(
    votes: Any,
    model: ConfusionModel,
    *,
    excess: float = 0.2,
    min_overlap: int = DEFAULT_MIN_OVERLAP,
) -> dict[tuple[str, str], float]:
    """Pairs of fitted voices that agree more often than ``model`` predicts, with the excess.

    The model assumes voices err independently given the truth, which predicts that voices
    i and j agree with probability Σ_k π_k Σ_a C_i[k, a]·C_j[k, a]. A pair whose agreement
    on the items of ``votes`` (batch rows) both answered exceeds that by more than ``excess``
    shares its errors: asked together early, it counts one opinion twice. Pairs sharing
    fewer than ``min_overlap`` items are not judged (a few shared items prove nothing).
    """
    ev = _fitted([], list(model.voices_), model, 0)
    table = parse_votes(votes, labels=model.labels_)
    pairs = co_votes(table)
    both, same = pairs.overlap(table), pairs.agreement(table)
    k = len(ev.log_prior)
    fitted = [v for v in table.voices if v in ev.log_conf]
    index = np.asarray([table.voices.index(v) for v in fitted], dtype=np.intp)
    conf = np.exp(np.stack([ev.log_conf[v] for v in fitted])) if fitted else np.ones((0, k, k))
    predicted = np.einsum("k,ika,jka->ij", np.exp(ev.log_prior), conf, conf)
    shared = both[np.ix_(index, index)]
    gap = same[np.ix_(index, index)] / np.maximum(shared, 1) - predicted
    hits = np.argwhere(np.triu((shared >= max(min_overlap, 1)) & (gap > excess), 1))
    return {(fitted[i], fitted[j]): float(gap[i, j]) for i, j in hits}


def order_voices(
    voices: Iterable[str],
    *,
    cost: Mapping[str, float],
    reliability: Reliability = None,
    by: Literal["cost", "value"] = "value",
    n_classes: int = 2,
    redundant: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Order voices for adaptive asking.

    ``by="cost"``: cheapest first (ties: more reliable first, then name). ``by="value"``:
    most evidence per unit cost first. Evidence is the |log-odds weight| of the voice's
    accuracy for a mapping, the mutual information between its answer and the truth for a
    fitted :class:`BayesianFusion`. Voices missing from ``cost`` cost 0. Of each
    ``redundant`` pair (see :func:`redundant_pairs`), the voice that comes later goes last.
    """
    names = list(voices)
    if reliability is None or isinstance(reliability, Mapping):
        known = check_reliability(reliability or {})
        acc = np.asarray([known.get(v, NEUTRAL_ACCURACY) for v in names])
        w = dict(zip(names, log_odds(acc, max(n_classes, 2)).tolist(), strict=True))
        evidence = {v: abs(x) for v, x in w.items()}
    else:
        w = evidence = _information(names, reliability)

    def price(v: str) -> float:
        c = float(cost.get(v, 0.0))
        if not math.isfinite(c) or c < 0:
            raise InputError(f"cost of voice {v!r} must be a finite non-negative number")
        return c

    if by == "cost":
        order = sorted(names, key=lambda v: (price(v), -w[v], v))
    else:
        order = sorted(names, key=lambda v: (-evidence[v] / max(price(v), 1e-12), v))
    pairs = [(a, b) for a, b in redundant if a in order and b in order]
    echoes = {max(a, b, key=order.index) for a, b in pairs}
    return [v for v in order if v not in echoes] + [v for v in order if v in echoes]
