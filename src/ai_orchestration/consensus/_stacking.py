"""Stacking: a class-symmetric logistic model of the votes, fitted on gold.

score(item, k) = Σ_votes for k [w_voice + w_(voice, context)] + α·log share_k + β·[no vote
for k] + b_k, softmax over the candidates (a conditional logit); share_k is k's share of the
item's votes (floored at 10⁻³). Every answer shares the same weights, so ten options
need no more parameters than two; the weights are fitted jointly, which is what discounts
voices that repeat each other's errors: a copy adds nothing the original has not said, so
the log-loss gives the pair the weight of one. ``context`` (an optional label per item, e.g.
a question's category) adds one weight per (voice, context) with a stronger L2 pull to 0:
a voice's reliability may differ by category, if the gold shows it. The two crowd terms let
the confidence grow with agreement beyond what the per-voice weights add up to (measured on
MMLU-Pro dev, 10 % gold, 5 splits: accuracy 0.742 → 0.745, ECE 0.030 → 0.028). Newton's
method with a backtracking line search on the L2-penalised log-loss; the design is dense over
the gold items only (gold × candidates × parameters); scoring a table sums over its votes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._calibration import softmax
from ai_orchestration.consensus._data import VoteTable

__all__ = ["Stacker", "fit_stacker"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
VOICE_L2 = 1.0  # measured on MMLU-Pro dev, 10 % gold: 1.0 beats 0.3 and 3.0
CONTEXT_L2 = 3.0  # per-(voice, context) deviations are pulled harder towards the voice's weight
BIAS_L2 = 1.0
_SHARE_FLOOR = 1e-3
_CROWD = 2  # the log-share and no-vote terms
_MAX_NEWTON = 50


@dataclass(frozen=True)
class Stacker:
    """Fitted weights: per voice, per (voice, context) and per answer."""

    voices: dict[str, int]
    contexts: dict[Hashable, int]
    labels: list[object]
    weights: FloatArray  # voices, contexts × voices, the two crowd terms, one bias per label

    def vote_params(self, table: VoteTable, context: IntArray | None) -> tuple[IntArray, IntArray]:
        """Each vote's voice parameter and (voice, context) parameter (-1 where none)."""
        n_voices = len(self.voices)
        own = np.asarray([self.voices.get(v, -1) for v in table.voices], dtype=np.intp)
        voice = own[table.voice]
        ctx = np.full(len(voice), -1, dtype=np.intp)
        if context is not None and self.contexts:
            c = context[table.item]
            ok = (c >= 0) & (voice >= 0)
            ctx[ok] = n_voices + c[ok] * n_voices + voice[ok]
        return voice, ctx

    def logits(self, table: VoteTable, context: IntArray | None) -> FloatArray:
        """score(item, k) for every item and answer of ``table``."""
        voice, ctx = self.vote_params(table, context)
        w = np.where(voice >= 0, self.weights[voice], 0.0)
        w += np.where(ctx >= 0, self.weights[ctx], 0.0)
        flat = table.item * table.n_labels + table.label
        summed = np.bincount(flat, weights=w, minlength=table.n_items * table.n_labels)
        out: FloatArray = summed.astype(np.float64).reshape(table.n_items, table.n_labels)
        start = len(self.weights) - len(self.labels) - _CROWD
        crowd = _crowd_terms(table)
        out += crowd[0] * self.weights[start] + crowd[1] * self.weights[start + 1]
        bias_of = {a: i for i, a in enumerate(self.labels)}
        start = len(self.weights) - len(self.labels)
        for k, a in enumerate(table.labels):
            if a in bias_of:
                out[:, k] += self.weights[start + bias_of[a]]
        return out


def _crowd_terms(table: VoteTable) -> tuple[FloatArray, FloatArray]:
    """log share_k and [no vote for k], per item and answer."""
    counts = table.counts()
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return np.log(np.maximum(share, _SHARE_FLOOR)), (counts == 0).astype(np.float64)


def _design(
    table: VoteTable, rows: IntArray, context: IntArray | None, n_ctx: int
) -> tuple[FloatArray, FloatArray]:
    """Dense features (gold rows × K × P) and the L2 strength of each parameter."""
    n_voices, k = len(table.voices), table.n_labels
    n_vote_params = n_voices * (1 + n_ctx)
    n_params = n_vote_params + _CROWD + k
    pos = np.full(table.n_items, -1, dtype=np.intp)
    pos[rows] = np.arange(len(rows))
    keep = pos[table.item] >= 0
    r, lab, v = pos[table.item][keep], table.label[keep], table.voice[keep]
    feats = np.zeros((len(rows), k, n_params))
    feats[r, lab, v] = 1.0
    if context is not None and n_ctx:
        c = context[table.item][keep]
        ok = c >= 0
        feats[r[ok], lab[ok], n_voices + c[ok] * n_voices + v[ok]] = 1.0
    log_share, unvoted = _crowd_terms(table)
    feats[:, :, n_vote_params] = log_share[rows]
    feats[:, :, n_vote_params + 1] = unvoted[rows]
    feats[:, np.arange(k), n_vote_params + _CROWD + np.arange(k)] = 1.0
    l2 = np.full(n_params, VOICE_L2)
    l2[n_voices:n_vote_params] = CONTEXT_L2
    l2[n_vote_params:] = BIAS_L2
    return feats, l2


def _penalised_nll(feats: FloatArray, y: IntArray, w: FloatArray, l2: FloatArray) -> float:
    z = feats @ w
    top = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return float((lse - z[np.arange(len(y)), y]).sum() + 0.5 * (l2 * w * w).sum())


def _newton(feats: FloatArray, y: IntArray, l2: FloatArray) -> FloatArray:
    """Minimise the penalised log-loss; the Hessian is F'diag(p)F − (F'p)(F'p)' + diag(l2)."""
    n, k, n_params = feats.shape
    w = np.zeros(n_params)
    loss = _penalised_nll(feats, y, w, l2)
    for _ in range(_MAX_NEWTON):
        p = softmax(feats @ w)
        resid = p.copy()
        resid[np.arange(n), y] -= 1.0
        flat = feats.reshape(n * k, n_params)
        grad = resid.reshape(-1) @ flat + l2 * w
        mean = np.matmul(p[:, None, :], feats)[:, 0, :]
        scaled = flat * np.sqrt(p).reshape(-1, 1)
        hess = scaled.T @ scaled - mean.T @ mean + np.diag(l2)
        step = np.linalg.solve(hess, grad)
        t, new = 1.0, loss
        while t > 1e-4:  # Newton overshoots on nearly separable gold: back off
            new = _penalised_nll(feats, y, w - t * step, l2)
            if new <= loss - 1e-4 * t * float(grad @ step):
                break
            t /= 2
        w = w - t * step
        done = loss - new < 1e-9 * max(1.0, abs(loss))
        loss = new
        if done:
            break
    return w


def fit_stacker(
    table: VoteTable,
    y: IntArray,
    *,
    context: IntArray | None = None,
    contexts: Sequence[Hashable] = (),
) -> Stacker:
    """Fit on the items with gold (``y >= 0``); ``context`` indexes ``contexts`` per item."""
    rows = np.flatnonzero(y >= 0)
    n_ctx = len(contexts) if context is not None else 0
    feats, l2 = _design(table, rows, context, n_ctx)
    w = _newton(feats, y[rows], l2)
    return Stacker(
        voices={v: i for i, v in enumerate(table.voices)},
        contexts={c: i for i, c in enumerate(contexts)} if n_ctx else {},
        labels=list(table.labels),
        weights=w,
    )
