"""Dependence between voices: who agrees with whom, and how much their shared errors cost.

Voices that copy each other's errors (sibling checkpoints, one family's fine-tunes, workers
who read one another's answers) are not independent opinions. Everything here is computed
from co-voting pairs (two voices answering the same item), generated once per table in
O(Σ votes-per-item²) without Python loops over voices; a pair counts only once the two
voices share at least ``min_overlap`` items, so two workers who met on three items of a
sparse crowd say nothing about each other.

:func:`design_effect` turns the estimated error correlation ρ of co-voting pairs into the
temperature that keeps a fused posterior from counting correlated voices as independent:
n votes with pairwise correlation ρ carry the evidence of n / (1 + (n − 1)·ρ) independent
ones (Kish's design effect), so the log-likelihood sum is divided by 1 + (n̄ − 1)·ρ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._data import VoteTable

__all__ = ["DEFAULT_MIN_OVERLAP", "CoVotes", "co_votes", "design_effect", "error_correlation"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
#: Items two voices must share before their agreement is read as dependence.
DEFAULT_MIN_OVERLAP = 10


@dataclass(frozen=True)
class CoVotes:
    """Every pair of votes on one item: vote indices ``a`` < ``b`` (into the table's votes)."""

    a: IntArray
    b: IntArray
    n_voices: int

    def per_pair(self, table: VoteTable, weights: FloatArray | None = None) -> FloatArray:
        """Sum of ``weights`` (one per co-vote; 1 when None) per (voice, voice), symmetric."""
        va, vb = table.voice[self.a], table.voice[self.b]
        n = self.n_voices
        flat = np.bincount(va * n + vb, weights=weights, minlength=n * n).astype(np.float64)
        out = flat.reshape(n, n)
        return out + out.T

    def overlap(self, table: VoteTable) -> FloatArray:
        """Items each pair of voices both answered."""
        return self.per_pair(table)

    def agreement(self, table: VoteTable) -> FloatArray:
        """Items each pair of voices answered alike."""
        same = (table.label[self.a] == table.label[self.b]).astype(np.float64)
        return self.per_pair(table, same)


def co_votes(table: VoteTable) -> CoVotes:
    """All pairs of votes sharing an item, vectorised over the offset within the item."""
    order = np.argsort(table.item, kind="stable")
    item = table.item[order]
    starts = np.searchsorted(item, np.arange(table.n_items))
    size = np.bincount(item, minlength=table.n_items)
    end = (starts + size)[item]  # one past the last vote of each vote's item
    pos = np.arange(len(order))
    a_parts, b_parts = [], []
    for d in range(1, int(size.max(initial=1))):
        ok = pos + d < end
        a_parts.append(order[pos[ok]])
        b_parts.append(order[pos[ok] + d])
    empty = np.empty(0, dtype=np.intp)
    a = np.concatenate(a_parts) if a_parts else empty
    b = np.concatenate(b_parts) if b_parts else empty
    return CoVotes(a.astype(np.intp), b.astype(np.intp), len(table.voices))


def error_correlation(
    table: VoteTable,
    posterior: FloatArray,
    *,
    pairs: CoVotes | None = None,
    min_overlap: int = DEFAULT_MIN_OVERLAP,
) -> float:
    """Overlap-weighted mean correlation of voices' errors, read through ``posterior``.

    For co-voting voices u, v with error rates e_u, e_v (expected under the posterior), the
    rate at which both are wrong *with the same answer* is observed as
    Σ 1[a_u = a_v]·(1 − P(a_u)) / overlap; errors independent and spread evenly over the
    K − 1 wrong answers predict e_u·e_v / (K − 1). The excess, scaled by
    √(e_u(1−e_u)·e_v(1−e_v)), is their error correlation, clipped to [0, 1]. Pairs sharing
    fewer than ``min_overlap`` items are left out; with none left the result is 0.
    """
    pairs = co_votes(table) if pairs is None else pairs
    p_vote = posterior[table.item, table.label]  # P(this vote is right)
    n_votes = np.bincount(table.voice, minlength=len(table.voices))
    wrong = np.bincount(table.voice, weights=1 - p_vote, minlength=len(table.voices))
    err: FloatArray = wrong / np.maximum(n_votes, 1)
    same = table.label[pairs.a] == table.label[pairs.b]
    same_wrong = pairs.per_pair(table, np.where(same, 1 - p_vote[pairs.a], 0.0))
    both = pairs.overlap(table)
    k_wrong = max(table.n_labels - 1, 1)
    spread = np.sqrt(err * (1 - err))
    rho = (same_wrong / np.maximum(both, 1) - np.outer(err, err) / k_wrong) / np.maximum(
        np.outer(spread, spread), 1e-9
    )
    ok = (both >= min_overlap) & ~np.eye(len(err), dtype=bool)
    if not ok.any():
        return 0.0
    return float(np.average(np.clip(rho[ok], 0.0, 1.0), weights=both[ok]))


def design_effect(table: VoteTable, rho: float) -> float:
    """1 + (n̄ − 1)·ρ, n̄ the mean number of votes per item: the temperature for correlation ρ."""
    n_bar = len(table.item) / max(table.n_items, 1)
    return 1.0 + max(n_bar - 1.0, 0.0) * rho
