"""Per-request fusion: one request's votes → a :class:`Consensus` with weights and explanation.

Failed votes (``error`` set) stay in ``Consensus.votes`` and the explanation but are not
counted. Free-text answers are clustered (normalisation, then embeddings when ``embed`` is
given) and the method votes over clusters; the answer is the cluster's most common raw answer.
Unless ``n_classes`` says otherwise, one extra candidate "(other)" — an answer no voice gave —
keeps a unanimous vote of weak voices from claiming certainty. Multiple-choice answers
(``choices`` given) are matched to the options by their normalised text only — two options are
never merged, however alike they read — and the fusion runs over every option, voted or not.

Abstention: when the top candidates tie, when "(other)" leads, or when confidence is below
``abstain_below``, the result has ``abstained=True``, ``answer=None``, ``confidence`` = the
leading probability and the full ``distribution``; ``explanation["abstained"]`` says why.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ai_orchestration.consensus._aggregators import (
    AttentionFusion,
    DempsterShafer,
    LogPool,
    MajorityVote,
    WeightedVote,
)
from ai_orchestration.consensus._auto import AutoFusion
from ai_orchestration.consensus._base import NEUTRAL_ACCURACY, Aggregator, log_odds
from ai_orchestration.consensus._bayes import BayesianFusion
from ai_orchestration.consensus._data import VoteTable, parse_votes
from ai_orchestration.consensus._reliability import ReliabilityTracker
from ai_orchestration.consensus._text import (
    DEFAULT_THRESHOLD,
    Embed,
    Judge,
    cluster,
    normalise,
    normalise_all,
)
from ai_orchestration.consensus._types import Consensus, Vote
from ai_orchestration.errors import ConsensusError, InputError

__all__ = ["METHODS", "fuse"]

METHODS: dict[str, type[Aggregator]] = {
    "majority": MajorityVote,
    "weighted": WeightedVote,
    "bayesian": BayesianFusion,
    "attention": AttentionFusion,
    "logpool": LogPool,
    "dempster_shafer": DempsterShafer,
    "auto": AutoFusion,
}
Reliability = Mapping[str, float] | ReliabilityTracker | Aggregator | None


class _Other:
    """A candidate answer no voice gave."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return "(other)" if self.n == 0 else f"(other {self.n + 1})"


def _check(votes: Iterable[Vote]) -> tuple[tuple[Vote, ...], list[Vote]]:
    all_votes = tuple(votes)
    for v in all_votes:
        if not isinstance(v, Vote):
            raise InputError(f"fuse() takes Vote objects, got {type(v).__name__}")
    valid = [v for v in all_votes if v.valid]
    names = Counter(v.voice for v in valid)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise InputError(f"voice(s) voted twice in one request: {', '.join(sorted(dup))}")
    return all_votes, valid


def reliability_map(reliability: Reliability) -> Mapping[str, float]:
    """Voice → accuracy from a mapping, a ``ReliabilityTracker`` or a fitted aggregator."""
    if isinstance(reliability, Aggregator):
        return reliability.reliability_
    if isinstance(reliability, ReliabilityTracker):
        return reliability.reliability()
    return reliability or {}


def _resolve(method: str, reliability: Reliability) -> tuple[Aggregator, str]:
    """The aggregator to use and how its priors were obtained."""
    if method not in METHODS:
        raise InputError(f"unknown consensus method {method!r}; known: {', '.join(METHODS)}")
    cls = METHODS[method]
    if isinstance(reliability, cls) and reliability.fitted_:
        return reliability, "learned (fitted aggregator)"
    mapping = reliability_map(reliability)
    if cls is MajorityVote:
        return MajorityVote(calibrate=False), "none (every vote counts 1)"
    agg = cls.from_reliability(mapping)
    return agg, ("learned" if mapping else "neutral (no history)")


def _options(choices: Sequence[Any] | None) -> dict[str, Any]:
    """Normalised option text → the option as given (the first of equal spellings)."""
    out: dict[str, Any] = {}
    for option, key in zip(choices or (), normalise_all(choices or ()), strict=True):
        out.setdefault(key, option)
    return out


def _rows(
    valid: list[Vote],
    answers: list[Any],
    groups: list[list[int]],
    keys: list[str],
    options: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """Batch rows for one item, the cluster label of each vote and each cluster's answer
    (``answers``: the votes' answers, as the matching option when there are options)."""
    reps, labels = [], []
    spelling = [(keys[i], repr(a)) for i, a in enumerate(answers)]
    for g in groups:
        counts = Counter(spelling[i] for i in g)
        best = max(g, key=lambda i: counts[spelling[i]])
        reps.append(answers[best])
        labels.append(answers[best] if _hashable(answers[best]) else keys[best])
    label_of = {i: labels[n] for n, g in enumerate(groups) for i in g}
    by_key = {**options, **{keys[g[0]]: labels[n] for n, g in enumerate(groups)}}
    rows = []
    for i, v in enumerate(valid):
        row: dict[str, Any] = {"item": 0, "voice": v.voice, "answer": label_of[i]}
        row["confidence"] = v.confidence
        if v.distribution is not None:
            row["distribution"] = _merge_dist(v.distribution, by_key)
        rows.append(row)
    return rows, labels, reps


def _merge_dist(dist: Mapping[Any, float], by_key: Mapping[str, Any]) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for k, p in dist.items():
        label = by_key.get(normalise(k), k)
        out[label] = out.get(label, 0.0) + float(p)
    return out


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _table(
    agg: Aggregator, rows: list[dict[str, Any]], n_classes: int | None, options: list[Any]
) -> VoteTable:
    """Parse the rows once, with every option as a candidate; without options, padding with
    "(other)" candidates up to the number of classes."""
    seen = {
        *agg.labels_,
        *(r["answer"] for r in rows),
        *(k for r in rows for k in (r.get("distribution") or ())),
    }
    if options:
        return parse_votes(rows, labels=agg.labels_, extra_labels=options)
    # an aggregator fitted on a label set knows every answer; others leave room for one more
    want = n_classes if n_classes is not None else (0 if agg.labels_ else len(seen) + 1)
    pads = [_Other(i) for i in range(max(want - len(seen), 0))]
    return parse_votes(rows, labels=agg.labels_, extra_labels=pads)


def _weights(agg: Aggregator, table: VoteTable) -> dict[str, float]:
    if isinstance(agg, MajorityVote):
        return dict.fromkeys(table.voices, 1.0)
    if isinstance(agg, AttentionFusion):
        w = agg.attention(table)  # one vote per voice, in voice order
    elif isinstance(agg, LogPool) and agg.weights_:
        w = np.asarray([agg.weights_.get(v, 1.0) for v in table.voices])
    elif isinstance(agg, DempsterShafer):
        w = agg.voice_reliability(table)
    else:
        w = log_odds(agg.voice_reliability(table), table.n_labels)
    return {v: round(x, 6) for v, x in zip(table.voices, w.tolist(), strict=True)}


def _why_for(agg: Aggregator, tracker: ReliabilityTracker | None) -> Callable[[str], str]:
    """How each voice's weight came about, as a function of the voice."""
    if isinstance(agg, MajorityVote):
        return lambda voice: "one vote each"
    neutral = f"neutral prior accuracy {NEUTRAL_ACCURACY:.3f}"
    learned = agg.reliability_
    pooled = agg.weights_ if isinstance(agg, LogPool) else {}

    def why(voice: str) -> str:
        if voice in pooled:
            return f"fitted pool weight {pooled[voice]:.3f}"
        if tracker is not None and not tracker.has_history(voice):
            return f"no history: {neutral}"
        if voice in learned:
            return f"learned accuracy {learned[voice]:.3f}"
        return f"unknown voice: {neutral}"

    return why


def fuse(
    votes: Iterable[Vote],
    *,
    method: str = "majority",
    reliability: Reliability = None,
    min_votes: int = 1,
    abstain_below: float | None = None,
    n_classes: int | None = None,
    choices: Sequence[Any] | None = None,
    embed: Embed | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    judge: Judge | None = None,
) -> Consensus:
    """Fuse one request's votes into a ``Consensus``.

    ``choices``: the request's options; answers then match options exactly (normalised), the
    embedder and judge are not used, and every option is a candidate (no "(other)").
    ``reliability`` is a voice → accuracy mapping, a :class:`ReliabilityTracker`, or a fitted
    aggregator (used as is when it is of ``method``'s class, else for its accuracies).
    Raises :class:`ConsensusError` when fewer than ``min_votes`` valid votes remain.

    >>> c = fuse([Vote("a", "Paris"), Vote("b", "paris."), Vote("c", "Lyon")])
    >>> c.answer, round(c.agreement, 3)
    ('Paris', 0.667)
    """
    all_votes, valid = _check(votes)
    if len(valid) < max(min_votes, 1):
        raise ConsensusError(
            f"quorum not met: {len(valid)} valid vote(s) of {len(all_votes)}, "
            f"{max(min_votes, 1)} required"
        )
    if all(isinstance(v.answer, Mapping) for v in valid):
        from ai_orchestration.consensus._structured import fuse_fields

        return fuse_fields(
            all_votes,
            valid,
            lambda vs: fuse(
                vs,
                method=method,
                reliability=reliability,
                n_classes=n_classes,
                choices=choices,
                embed=embed,
                threshold=threshold,
                judge=judge,
            ),
            abstain_below=abstain_below,
            method=method,
        )
    answers = [v.answer for v in valid]
    options = _options(choices)
    if options:
        answers = [options.get(k, a) for k, a in zip(normalise_all(answers), answers, strict=True)]
        embed = judge = None  # options are told apart by their text, never by likeness
    keys = normalise_all(answers)
    groups = cluster(answers, embed=embed, threshold=threshold, judge=judge, keys=keys)
    rows, labels, reps = _rows(valid, answers, groups, keys, options)
    agg, priors = _resolve(method, reliability)
    table = _table(agg, rows, n_classes, list(options.values()))
    proba = agg.proba(table)[0]
    tracker = reliability if isinstance(reliability, ReliabilityTracker) else None
    return _result(
        all_votes, valid, groups, labels, reps, table, proba, agg, priors, abstain_below, tracker
    )


def _result(
    all_votes: tuple[Vote, ...],
    valid: list[Vote],
    groups: list[list[int]],
    labels: list[Any],
    reps: list[Any],
    table: VoteTable,
    proba: Any,
    agg: Aggregator,
    priors: str,
    abstain_below: float | None,
    tracker: ReliabilityTracker | None,
) -> Consensus:
    answer_of = {_key(lab): rep for lab, rep in zip(labels, reps, strict=True)}
    dist = {_key(lab): float(p) for lab, p in zip(table.labels, proba, strict=True)}
    order = np.argsort(-proba, kind="stable")
    lead = table.labels[int(order[0])]
    conf = float(proba[order[0]])
    reason = None
    if len(order) > 1 and np.isclose(proba[order[0]], proba[order[1]], rtol=0, atol=1e-9):
        reason = "tie between the leading answers"
    elif _key(lead) not in answer_of:
        reason = "no answer given by a voice leads"
    elif abstain_below is not None and conf < abstain_below:
        reason = f"confidence {conf:.3f} below {abstain_below}"
    cluster_of = {i: n for n, g in enumerate(groups) for i in g}
    cluster_key = [_key(lab) for lab in labels]
    weights = _weights(agg, table)
    why = _why_for(agg, tracker)
    voices = {
        v.voice: {
            "answer": v.answer,
            "cluster": cluster_key[cluster_of[i]],
            "weight": weights[v.voice],
            "why": why(v.voice),
        }
        for i, v in enumerate(valid)
    }
    failed = {v.voice: v.error or "no answer" for v in all_votes if not v.valid}
    explanation: dict[str, Any] = {"method": agg.method, "priors": priors, "voices": voices}
    explanation.update(failed=failed, temperature=agg.temperature_, abstained=reason)
    if isinstance(agg, AutoFusion):
        explanation["auto"] = agg.explain()
    winner = None if reason else answer_of[_key(lead)]
    lead_key = _key(lead)
    agree = sum(len(g) for g, k in zip(groups, cluster_key, strict=True) if k == lead_key)
    return Consensus(
        answer=winner,
        confidence=conf,
        distribution=dist,
        weights=weights,
        agreement=agree / len(valid),
        method=agg.method,
        votes=all_votes,
        abstained=reason is not None,
        explanation=explanation,
    )


def _key(label: Any) -> str:
    if isinstance(label, str):
        return label
    if isinstance(label, _Other):
        return repr(label)
    try:
        return json.dumps(label)
    except TypeError:
        return str(label)
