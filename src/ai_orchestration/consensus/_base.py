"""The batch aggregator interface (crowd-kit-like) and helpers shared by every method.

``fit(votes, gold=None) -> self``, ``predict(votes) -> {item: answer}``,
``predict_proba(votes) -> {item: {answer: p}}``. Temperature scaling is fitted on
out-of-fold logits of the gold items (so a method's in-sample optimism is not baked into its
temperature); without enough gold (fewer than 20 items) it is fitted on held-out voices when
the method gives each vote a likelihood (:func:`holdout_temperature`), else it stays 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._calibration import (
    fit_temperature,
    holdout_temperature,
    softmax,
)
from ai_orchestration.consensus._data import VoteTable, parse_gold, parse_votes
from ai_orchestration.errors import InputError

__all__ = [
    "NEUTRAL_ACCURACY",
    "NEUTRAL_PRIOR",
    "Aggregator",
    "check_reliability",
    "log_odds",
    "one_coin",
    "segment_sum",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
#: Beta pseudo-counts (correct, wrong) every voice starts from: mean accuracy 2/3, weak.
NEUTRAL_PRIOR = (2.0, 1.0)
#: The accuracy a voice without history is assumed to have (the prior's mean).
NEUTRAL_ACCURACY = NEUTRAL_PRIOR[0] / sum(NEUTRAL_PRIOR)
_ACC_CLIP = 1e-3


def segment_sum(table: VoteTable, values: FloatArray) -> FloatArray:
    """Sum per-vote rows ``values`` (n, K) into per-item rows (N, K)."""
    out = np.empty((table.n_items, values.shape[1]))
    for k in range(values.shape[1]):
        out[:, k] = np.bincount(table.item, weights=values[:, k], minlength=table.n_items)
    return out


def log_odds(acc: FloatArray, n_labels: int) -> FloatArray:
    """w = log((K-1)·p/(1-p)): the exact vote weight when errors spread evenly over K-1 answers."""
    p = np.clip(acc, _ACC_CLIP, 1 - _ACC_CLIP)
    out: FloatArray = np.log(max(n_labels - 1, 1) * p / (1 - p))
    return out


def check_reliability(reliability: Mapping[str, float]) -> dict[str, float]:
    """Validate a voice → accuracy mapping (finite, in [0, 1])."""
    out: dict[str, float] = {}
    for voice, value in reliability.items():
        try:
            p = float(value)
        except (TypeError, ValueError):
            raise InputError(f"reliability of voice {voice!r} is not a number: {value!r}") from None
        if not (0.0 <= p <= 1.0):
            raise InputError(f"reliability of voice {voice!r} is not in [0, 1]: {value!r}")
        out[str(voice)] = p
    return out


def one_coin(
    table: VoteTable,
    y: IntArray,
    *,
    prior: tuple[float, float] = NEUTRAL_PRIOR,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[FloatArray, FloatArray]:
    """Per-voice accuracy under the one-coin model; EM with gold items clamped.

    Returns (accuracy per voice, posterior per item). With all items in gold this is the
    Beta-smoothed supervised accuracy; without gold it is unsupervised EM from majority.
    """
    counts = table.counts()
    post = counts / counts.sum(axis=1, keepdims=True)
    gold = y >= 0
    post[gold] = np.eye(table.n_labels)[y[gold]]
    n_votes = np.bincount(table.voice, minlength=len(table.voices)).astype(np.float64)
    acc = np.full(len(table.voices), prior[0] / sum(prior))
    for _ in range(max_iter):
        right = np.bincount(
            table.voice, weights=post[table.item, table.label], minlength=len(table.voices)
        )
        acc = (right + prior[0]) / (n_votes + prior[0] + prior[1])
        new = softmax(table.counts(log_odds(acc, table.n_labels)[table.voice]))
        new[gold] = post[gold]
        delta = float(np.abs(new - post).max())
        post = new
        if delta < tol:
            break
    return acc, post


class Aggregator:
    """Base of the batch aggregators: parsing, gold, temperature scaling, result dicts."""

    method: ClassVar[str] = "base"

    def __init__(self, *, calibrate: bool = True, cv_folds: int = 5) -> None:
        self.calibrate = calibrate
        self.cv_folds = cv_folds
        self.labels_: list[Any] = []
        self.reliability_: dict[str, float] = {}
        self.temperature_ = 1.0
        self.fitted_ = False

    # -- public interface -------------------------------------------------------------------

    def fit(self, votes: Any, gold: Mapping[Any, Any] | None = None) -> Self:
        """Learn from ``votes`` (supervised with ``gold``, else unsupervised)."""
        extra = list(gold.values()) if isinstance(gold, Mapping) else ()
        table = parse_votes(votes, extra_labels=extra)
        y = parse_gold(gold, table)
        self.labels_ = list(table.labels)
        self._fit(table, y)
        self.temperature_ = 1.0
        if self.calibrate:
            self.temperature_ = self._fit_temperature(table, y)
        self.fitted_ = True
        return self

    def predict_proba(self, votes: Any) -> dict[Any, dict[Any, float]]:
        """Fused distribution over answers, per item."""
        table, proba = self._proba_table(votes)
        return {
            it: {a: float(p) for a, p in zip(table.labels, row, strict=True)}
            for it, row in zip(table.items, proba, strict=True)
        }

    def predict(self, votes: Any) -> dict[Any, Any]:
        """Most probable answer per item; ties go to the first answer in sorted order."""
        table, proba = self._proba_table(votes)
        best = proba.argmax(axis=1)
        return {it: table.labels[k] for it, k in zip(table.items, best, strict=True)}

    def fit_predict(self, votes: Any, gold: Mapping[Any, Any] | None = None) -> dict[Any, Any]:
        return self.fit(votes, gold).predict(votes)

    def fit_predict_proba(
        self, votes: Any, gold: Mapping[Any, Any] | None = None
    ) -> dict[Any, dict[Any, float]]:
        return self.fit(votes, gold).predict_proba(votes)

    # -- for subclasses ---------------------------------------------------------------------

    @classmethod
    def from_reliability(cls, reliability: Mapping[str, float]) -> Self:
        """An unfitted aggregator that trusts the given voice → accuracy mapping."""
        agg = cls(calibrate=False)
        agg.reliability_ = check_reliability(reliability)
        return agg

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        self.reliability_ = dict(zip(table.voices, one_coin(table, y)[0].tolist(), strict=True))

    def _logits(self, table: VoteTable) -> FloatArray:
        raise NotImplementedError

    def _vote_loglik(self, table: VoteTable) -> FloatArray | None:
        """log P(answer | truth = k) of each vote (votes × K), when the method has one."""
        return None

    def voice_reliability(self, table: VoteTable) -> FloatArray:
        """Learned accuracy of each voice in ``table``; unseen voices get the neutral prior."""
        return np.asarray([self.reliability_.get(v, NEUTRAL_ACCURACY) for v in table.voices])

    def _proba_table(self, votes: Any) -> tuple[VoteTable, FloatArray]:
        table = parse_votes(votes, labels=self.labels_)
        return table, self.proba(table)

    def proba(self, table: VoteTable) -> FloatArray:
        """Calibrated fused distribution (items × answers) for a parsed table."""
        logits = self._logits(table)
        if not np.isfinite(logits).all():
            raise InputError(f"{self.method}: votes produced non-finite scores")
        return softmax(logits, self.temperature_)

    def _fit_temperature(self, table: VoteTable, y: IntArray) -> float:
        gold_rows = np.flatnonzero(y >= 0)
        folds = min(self.cv_folds, len(gold_rows) // 10)
        if folds < 2:
            loglik = self._vote_loglik(table)
            if loglik is None:
                return 1.0
            t = holdout_temperature(self._logits(table), loglik, table.item)
            return t if math.isfinite(t) else 1.0
        rng = np.random.default_rng(0)
        assignment = rng.permutation(len(gold_rows)) % folds
        oof = np.empty((len(gold_rows), table.n_labels))
        for f in range(folds):
            held = gold_rows[assignment == f]
            y_fold = y.copy()
            y_fold[held] = -1
            clone = copy.copy(self)
            clone._fit(table, y_fold)
            oof[assignment == f] = clone._logits(table)[held]
        t = fit_temperature(oof, y[gold_rows])
        return t if math.isfinite(t) else 1.0
