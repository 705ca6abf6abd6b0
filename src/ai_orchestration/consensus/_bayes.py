"""Bayesian fusion: per-voice confusion matrices with a Dirichlet prior (Dawid–Skene).

P(y=k | votes) ∝ π_k · Π_i C_i[k, answer_i]. Fitted from gold (counting), by EM without gold,
or by EM with the known gold clamped. Optional confidence bins give each voice one confusion
matrix per bin of its stated confidence, shrunk towards the voice's pooled matrix, so a
stated confidence is trusted only as far as the voice has earned it. Vectorised numpy: each
EM half-step is a matmul with the (item × cell) vote counts, or, when that matrix would be
too large, a gather plus a ``reduceat`` over the votes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._base import NEUTRAL_PRIOR, Aggregator
from ai_orchestration.consensus._calibration import softmax
from ai_orchestration.consensus._data import VoteTable
from ai_orchestration.errors import InputError

__all__ = ["BayesianFusion"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_DENSE_LIMIT = 20_000_000  # items × cells up to which EM runs on a dense count matrix (160 MB)
_BLOCK = 65_536  # cells per block of rows in those matmuls (512 kB)


def symmetric_confusion(acc: float, k: int) -> FloatArray:
    """K×K confusion with ``acc`` on the diagonal and the rest spread evenly."""
    if k == 1:
        return np.ones((1, 1))
    out = np.full((k, k), (1.0 - acc) / (k - 1))
    np.fill_diagonal(out, acc)
    return out


def extend_confusion(conf: FloatArray, k_new: int) -> FloatArray:
    """Grow a K×K confusion to ``k_new`` answers never seen at fit time (symmetric fill)."""
    k = conf.shape[0]
    if k_new == k:
        return conf
    acc = float(np.clip(np.diag(conf).mean(), 1e-3, 1 - 1e-3))
    off = (1.0 - acc) / (k_new - 1)
    out = np.full((k_new, k_new), off)
    out[:k, :k] = conf * (1.0 - off * (k_new - k))
    out[np.arange(k, k_new), np.arange(k, k_new)] = acc
    return out


@dataclass(frozen=True)
class _Dense:
    """Votes per (item, cell): each EM half-step is a matmul, run in blocks of rows that fit in
    cache and that BLAS keeps on one thread (its threads stall when the machine is busy)."""

    counts: FloatArray

    @property
    def rows(self) -> int:
        return max(1, _BLOCK // int(self.counts.shape[1]))

    def by_item(self, per_cell: FloatArray) -> FloatArray:
        out = np.empty((len(self.counts), per_cell.shape[1]))
        n = self.rows
        for s in range(0, len(out), n):
            np.matmul(self.counts[s : s + n], per_cell, out=out[s : s + n])
        return out

    def by_cell(self, per_item: FloatArray) -> FloatArray:
        out = np.zeros((self.counts.shape[1], per_item.shape[1]))
        n = self.rows
        for s in range(0, len(per_item), n):
            out += self.counts[s : s + n].T @ per_item[s : s + n]
        return out


@dataclass(frozen=True)
class _Sorted:
    """Votes sorted two ways, so each EM half-step is one gather plus one ``reduceat``."""

    cell_by_item: IntArray  # cell of the votes, sorted by item
    item_starts: IntArray
    item_by_cell: IntArray  # item of the votes, sorted by cell
    cell_starts: IntArray
    cells: IntArray  # the cells present, in sorted order
    n_cells: int

    def by_item(self, per_cell: FloatArray) -> FloatArray:
        out: FloatArray = np.add.reduceat(per_cell[self.cell_by_item], self.item_starts, axis=0)
        return out

    def by_cell(self, per_item: FloatArray) -> FloatArray:
        out = np.zeros((self.n_cells, per_item.shape[1]))
        out[self.cells] = np.add.reduceat(per_item[self.item_by_cell], self.cell_starts, axis=0)
        return out


def _group(table: VoteTable, worker: IntArray, n_workers: int) -> _Dense | _Sorted:
    """Votes grouped by item and by cell (worker × K + answer) for the EM half-steps."""
    cell = worker * table.n_labels + table.label
    n_cells = n_workers * table.n_labels
    if table.n_items * n_cells <= _DENSE_LIMIT:
        dense = np.zeros((table.n_items, n_cells))
        dense.reshape(-1)[table.item * n_cells + cell] = 1.0  # one vote per (item, worker)
        return _Dense(dense)
    by_item = np.argsort(table.item, kind="stable")
    by_cell = np.argsort(cell, kind="stable")
    sorted_cell = cell[by_cell]
    cell_starts = np.flatnonzero(np.r_[True, sorted_cell[1:] != sorted_cell[:-1]])
    item_starts = np.searchsorted(table.item[by_item], np.arange(table.n_items))
    cells = sorted_cell[cell_starts]
    return _Sorted(cell[by_item], item_starts, table.item[by_cell], cell_starts, cells, n_cells)


class BayesianFusion(Aggregator):
    """Dawid–Skene with a Dirichlet prior; supervised, unsupervised or semi-supervised.

    ``prior`` = (pseudo-count on the diagonal, total pseudo-count spread over the wrong
    answers) of each confusion row: the neutral prior says "accuracy 2/3, weakly held".
    ``confidence_bins`` are the inner edges of the stated-confidence bins (votes without a
    confidence share one more bin); ``bin_strength`` is how many pseudo-votes of the voice's
    pooled matrix each bin starts from.

    >>> votes = [{"item": i, "voice": v, "answer": "A"} for i in range(3) for v in "xyz"]
    >>> BayesianFusion().fit_predict(votes)
    {0: 'A', 1: 'A', 2: 'A'}
    """

    method = "bayesian"

    def __init__(
        self,
        *,
        prior: tuple[float, float] = NEUTRAL_PRIOR,
        confidence_bins: Sequence[float] | None = None,
        bin_strength: float = 5.0,
        max_iter: int = 100,
        tol: float = 1e-5,
        calibrate: bool = True,
        cv_folds: int = 5,
    ) -> None:
        super().__init__(calibrate=calibrate, cv_folds=cv_folds)
        if min(prior) <= 0:
            raise InputError(f"BayesianFusion prior pseudo-counts must be positive: {prior!r}")
        self.prior = prior
        self.edges = np.asarray(sorted(confidence_bins or ()), dtype=np.float64)
        self.bin_strength = bin_strength
        self.max_iter, self.tol = max_iter, tol
        self.voices_: list[str] = []
        self.confusion_: FloatArray = np.ones((0, 1, 1, 1))
        self.class_prior_: FloatArray = np.ones(1)
        self.n_iter_ = 0

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2 if len(self.edges) else 1

    def _workers(self, table: VoteTable) -> IntArray:
        """Each vote's (voice, confidence bin) as one index: voice × bins + bin."""
        if not len(self.edges):
            return table.voice
        c = table.confidence
        binned = np.searchsorted(self.edges, np.nan_to_num(c), side="right") + 1
        out: IntArray = table.voice * self.n_bins + np.where(np.isnan(c), 0, binned)
        return out

    # -- EM ---------------------------------------------------------------------------------

    def _m_step(self, table: VoteTable, groups: _Dense | _Sorted, post: FloatArray) -> FloatArray:
        k, nw = table.n_labels, len(table.voices) * self.n_bins
        # counts[w*K + l, c] -> conf[w, c, l]
        conf = groups.by_cell(post).reshape(nw, k, k).transpose(0, 2, 1)
        pseudo = self._pseudo(k)
        if self.n_bins > 1:
            pooled = conf.reshape(-1, self.n_bins, k, k).sum(axis=1) + pseudo
            pooled /= pooled.sum(axis=2, keepdims=True)
            pseudo = pseudo + self.bin_strength * np.repeat(pooled, self.n_bins, axis=0)
        conf = conf + pseudo
        out: FloatArray = conf / conf.sum(axis=2, keepdims=True)
        return out

    def _pseudo(self, k: int) -> FloatArray:
        right, wrong = self.prior
        if k == 1:
            return np.full((1, 1), right)
        out = np.full((k, k), wrong / (k - 1))
        np.fill_diagonal(out, right)
        return out

    def _e_step(
        self, groups: _Dense | _Sorted, log_conf: FloatArray, log_prior: FloatArray
    ) -> FloatArray:
        # log_conf[w, c, l] -> rows w*K + l, columns c
        flat = log_conf.transpose(0, 2, 1).reshape(-1, log_conf.shape[1])
        out = groups.by_item(flat)
        out += log_prior
        return out

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        k = table.n_labels
        worker = self._workers(table)
        groups = _group(table, worker, len(table.voices) * self.n_bins)
        gold = y >= 0
        any_gold = bool(gold.any())
        counts = table.counts()  # einsum sums an (items × K) array much faster than .sum here
        post = counts / np.einsum("ik->i", counts)[:, None]
        if any_gold:
            post[gold] = np.eye(k)[y[gold]]
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            conf = self._m_step(table, groups, post)
            prior = (np.einsum("ik->k", post) + 1.0) / (table.n_items + k)
            new = softmax(self._e_step(groups, np.log(conf), np.log(prior)), in_place=True)
            if any_gold:
                new[gold] = post[gold]
            post -= new  # the old posterior is not needed any more: reuse it for the change
            delta = float(np.abs(post, out=post).max())
            post = new
            if delta < self.tol or gold.all():
                break
        self.n_iter_ = n_iter
        self.voices_ = list(table.voices)
        self.confusion_ = conf.reshape(len(table.voices), self.n_bins, k, k)
        self.class_prior_ = prior
        self._set_reliability(worker)

    def _set_reliability(self, worker: IntArray) -> None:
        n_voices = len(self.voices_)
        per_voice = np.bincount(worker, minlength=n_voices * self.n_bins).reshape(n_voices, -1)
        share = per_voice / np.maximum(per_voice.sum(axis=1, keepdims=True), 1)
        diag = np.einsum("vbkk->vbk", self.confusion_) @ self.class_prior_
        acc = (diag * share).sum(axis=1)
        self.reliability_ = dict(zip(self.voices_, acc.tolist(), strict=True))

    # -- prediction -------------------------------------------------------------------------

    def _table_confusion(self, table: VoteTable) -> FloatArray:
        """Confusion (voices of ``table`` × bins, K', K') for the answers of ``table``."""
        k = table.n_labels
        fitted = {v: i for i, v in enumerate(self.voices_)}
        out = np.empty((len(table.voices), self.n_bins, k, k))
        acc = np.clip(self.voice_reliability(table), 1e-3, 1 - 1e-3)
        for i, voice in enumerate(table.voices):
            j = fitted.get(voice)
            for b in range(self.n_bins):
                if j is not None:
                    out[i, b] = extend_confusion(self.confusion_[j, b], k)
                else:
                    out[i, b] = symmetric_confusion(float(acc[i]), k)
        return out.reshape(-1, k, k)

    def _table_prior(self, k: int) -> FloatArray:
        if not self.voices_:
            return np.full(k, 1.0 / k)
        prior = np.full(k, float(self.class_prior_.min()))
        prior[: len(self.class_prior_)] = self.class_prior_
        out: FloatArray = prior / prior.sum()
        return out

    def _logits(self, table: VoteTable) -> FloatArray:
        groups = _group(table, self._workers(table), len(table.voices) * self.n_bins)
        log_conf = np.log(self._table_confusion(table))
        return self._e_step(groups, log_conf, np.log(self._table_prior(table.n_labels)))

    def _vote_loglik(self, table: VoteTable) -> FloatArray:
        out: FloatArray = np.log(self._table_confusion(table))[self._workers(table), :, table.label]
        return out

    def confusion(self, voice: str) -> dict[Any, dict[Any, float]]:
        """The fitted confusion of ``voice`` pooled over bins: true answer → {answer: p}."""
        if voice not in self.voices_:
            raise InputError(f"voice {voice!r} was not seen at fit time")
        mat = self.confusion_[self.voices_.index(voice)].mean(axis=0)
        return {
            t: {a: float(mat[i, j]) for j, a in enumerate(self.labels_)}
            for i, t in enumerate(self.labels_)
        }
