"""Label aggregators: majority, weighted vote, attention, log-linear pool, Dempster–Shafer.

Each learns a per-voice reliability (accuracy) from gold, or by one-coin EM without gold, and
shares the batch interface of :class:`~ai_orchestration.consensus._base.Aggregator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._base import (
    _ACC_CLIP,
    Aggregator,
    log_odds,
    one_coin,
    segment_sum,
)
from ai_orchestration.consensus._calibration import _nll, fit_temperature, softmax
from ai_orchestration.consensus._data import VoteTable
from ai_orchestration.consensus._text import _embeddings

__all__ = [
    "AttentionFusion",
    "DempsterShafer",
    "LogPool",
    "MajorityVote",
    "WeightedVote",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Embed = Callable[[list[str]], Any]
_FLOOR = 1e-6


def smoothed(table: VoteTable, acc: FloatArray) -> FloatArray:
    """Each vote as a distribution: its own if given, else accuracy on its answer, rest spread."""
    k = table.n_labels
    r = acc[table.voice]
    out = np.repeat(((1 - r) / max(k - 1, 1))[:, None], k, axis=1)
    out[np.arange(len(r)), table.label] = r if k > 1 else 1.0
    if table.dist is not None:
        has = ~np.isnan(table.dist[:, 0])
        out[has] = table.dist[has]
    return out


class MajorityVote(Aggregator):
    """Plurality of votes; probability = vote share, temperature-scaled when fitted on gold.

    >>> pairs = [("x", "A"), ("y", "A"), ("z", "B")]
    >>> votes = [{"item": 1, "voice": v, "answer": a} for v, a in pairs]
    >>> MajorityVote().fit_predict(votes)
    {1: 'A'}
    """

    method = "majority"

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        self.reliability_ = {}

    def _logits(self, table: VoteTable) -> FloatArray:
        counts = table.counts()
        share = counts / counts.sum(axis=1, keepdims=True)
        out: FloatArray = np.log(np.maximum(share, 1e-3))
        return out


class WeightedVote(Aggregator):
    """Votes weighted by w = log((K−1)·p/(1−p)), p each voice's learned accuracy."""

    method = "weighted"

    def _logits(self, table: VoteTable) -> FloatArray:
        w = log_odds(self.voice_reliability(table), table.n_labels)
        return segment_sum(table, np.eye(table.n_labels)[table.label] * w[table.voice][:, None])

    def _vote_loglik(self, table: VoteTable) -> FloatArray:
        """The one-coin model: p for the true answer, (1 − p)/(K − 1) for each other."""
        k = max(table.n_labels, 2)
        p = np.clip(self.voice_reliability(table), _ACC_CLIP, 1 - _ACC_CLIP)[table.voice]
        out = np.repeat(np.log((1 - p) / (k - 1))[:, None], table.n_labels, axis=1)
        out[np.arange(len(p)), table.label] = np.log(p)
        return out


class AttentionFusion(Aggregator):
    """Per item, weights a_i = softmax(β·s_i + log r_i) over the voices, then a weighted mix.

    s_i is voice i's agreement with the other voices on the item (share agreeing, similarity
    of distributions, or embedding similarity of answers when ``embed`` is given); r_i is
    its learned accuracy. β is picked on gold from a small grid (default 2 without gold).
    """

    method = "attention"
    betas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(
        self,
        *,
        beta: float | None = None,
        embed: Embed | None = None,
        calibrate: bool = True,
        cv_folds: int = 5,
    ) -> None:
        super().__init__(calibrate=calibrate, cv_folds=cv_folds)
        self.beta = beta
        self.beta_ = 2.0 if beta is None else beta
        self.embed = embed
        self._sims: tuple[tuple[str, ...], FloatArray] | None = None

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        super()._fit(table, y)
        gold = y >= 0
        if self.beta is not None or not gold.any():
            return
        scores = []
        for b in self.betas:
            self.beta_ = b
            logits = self._logits(table)[gold]
            scores.append(_nll(logits, y[gold], fit_temperature(logits, y[gold])))
        self.beta_ = self.betas[int(np.argmin(scores))]

    def attention(self, table: VoteTable) -> FloatArray:
        """Normalised attention weight of every vote within its item."""
        raw = table.onehot()
        sim = self._similarity(table)
        others = segment_sum(table, raw)[table.item] - raw
        n_others = np.maximum(np.bincount(table.item)[table.item] - 1, 1)
        s = ((raw @ sim) * others).sum(axis=1) / n_others
        r = np.clip(self.voice_reliability(table), 1e-3, 1.0)
        e = np.exp(self.beta_ * s) * r[table.voice]
        total = np.bincount(table.item, weights=e, minlength=table.n_items)
        out: FloatArray = e / total[table.item]
        return out

    def _similarity(self, table: VoteTable) -> FloatArray:
        if self.embed is None:
            return np.eye(table.n_labels)
        texts = tuple(str(a) for a in table.labels)
        if self._sims is None or self._sims[0] != texts:
            # one entry: fitting scores every β and CV fold on the same labels
            unit = _embeddings(list(texts), self.embed)
            self._sims = (texts, np.clip(unit @ unit.T, 0.0, 1.0))
        return self._sims[1]

    def _logits(self, table: VoteTable) -> FloatArray:
        a = self.attention(table)
        mix = segment_sum(table, smoothed(table, self.voice_reliability(table)) * a[:, None])
        out: FloatArray = np.log(np.maximum(mix, _FLOOR))
        return out


class LogPool(Aggregator):
    """Learned log-linear pool: log p(y) = Σ_i w_i·log p_i(y) + b_y, fitted by log-loss.

    Fitting the weights jointly discounts voices that repeat each other's errors. Label-only
    votes enter as their answer with the voice's accuracy, the rest spread evenly. Without
    gold the pool is fitted to the one-coin EM posterior.
    """

    method = "logpool"

    def __init__(
        self,
        *,
        steps: int = 400,
        l2: float = 1e-3,
        eps: float = 1e-3,
        calibrate: bool = True,
        cv_folds: int = 5,
    ) -> None:
        super().__init__(calibrate=calibrate, cv_folds=cv_folds)
        self.steps, self.l2, self.eps = steps, l2, eps
        self.weights_: dict[str, float] = {}
        self.bias_: dict[Any, float] = {}

    def _features(self, table: VoteTable) -> FloatArray:
        out: FloatArray = np.log(
            np.maximum(smoothed(table, self.voice_reliability(table)), self.eps)
        )
        return out

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        acc, post = one_coin(table, y)
        self.reliability_ = dict(zip(table.voices, acc.tolist(), strict=True))
        gold = y >= 0  # post has the gold rows clamped to their answers
        rows = gold.astype(np.float64) if gold.any() else np.ones(table.n_items)
        w, b = self._descend(table, self._features(table), post, rows / rows.sum())
        self.weights_ = dict(zip(table.voices, w.tolist(), strict=True))
        self.bias_ = dict(zip(table.labels, b.tolist(), strict=True))

    def _descend(
        self, table: VoteTable, feats: FloatArray, target: FloatArray, rows: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Adam on the weighted log-loss, shrunk towards the plain pool; weights kept ≥ 0."""
        start = np.concatenate([np.ones(len(table.voices)), np.zeros(table.n_labels)])
        theta = start.copy()
        m, v = np.zeros_like(theta), np.zeros_like(theta)
        nv = len(table.voices)
        for t in range(1, self.steps + 1):
            w, b = theta[:nv], theta[nv:]
            z = segment_sum(table, feats * w[table.voice][:, None]) + b
            g = (softmax(z) - target) * rows[:, None]
            gw = np.bincount(table.voice, weights=(g[table.item] * feats).sum(1), minlength=nv)
            grad = np.concatenate([gw, g.sum(0)]) + self.l2 * (theta - start)
            if np.abs(grad).max() < 1e-9:  # at the optimum: Adam would amplify rounding noise
                break
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            theta -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-3)
            theta[:nv] = np.maximum(theta[:nv], 0.0)
        return theta[:nv], theta[nv:]

    def _logits(self, table: VoteTable) -> FloatArray:
        known = list(self.weights_.values())
        default = float(np.mean(known)) if known else 1.0
        w = np.asarray([self.weights_.get(v, default) for v in table.voices])
        b = np.asarray([self.bias_.get(a, 0.0) for a in table.labels])
        out: FloatArray = segment_sum(table, self._features(table) * w[table.voice][:, None]) + b
        return out


class DempsterShafer(Aggregator):
    """Dempster's rule over simple support functions discounted by each voice's reliability.

    Voice i puts mass r_i·q_i(k) on each answer k (q_i its distribution, or its answer times
    its stated confidence) and 1 − r_i·Σq on ignorance; combined masses are turned into
    probabilities with the pignistic transform.
    """

    method = "dempster_shafer"

    def _logits(self, table: VoteTable) -> FloatArray:
        r = np.clip(self.voice_reliability(table), 0.0, 1 - 1e-6)[table.voice]
        q = table.onehot()
        conf = np.where(np.isnan(table.confidence), 1.0, table.confidence)
        if table.dist is not None:
            conf = np.where(np.isnan(table.dist[:, 0]), conf, 1.0)
        mass = q * (r * conf)[:, None]
        ignorance = np.maximum(1.0 - mass.sum(axis=1), 1e-9)
        log_a = segment_sum(table, np.log(mass + ignorance[:, None]))
        log_b = np.bincount(table.item, weights=np.log(ignorance), minlength=table.n_items)
        top = log_a.max(axis=1)
        a = np.exp(log_a - top[:, None])
        b = np.exp(log_b - top)
        singles = np.maximum(a - b[:, None], 0.0)
        betp = singles + (b / table.n_labels)[:, None]
        betp /= betp.sum(axis=1, keepdims=True)
        out: FloatArray = np.log(np.maximum(betp, _FLOOR))
        return out
