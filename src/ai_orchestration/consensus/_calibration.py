"""Calibration: temperature scaling and the calibration report (accuracy, log-loss, Brier, ECE).

Without gold, :func:`holdout_temperature` fits the temperature on held-out voices: each vote
is a noisy label for the fused posterior of the other votes on its item, read through the
voice's own confusion. When the held-out voice errs independently of the others this scores
that posterior properly: an over-confident fusion (e.g. of voices that share errors) gets
T > 1, a well-specified one T ≈ 1. A held-out voice sharing the others' errors pulls T down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_orchestration.errors import InputError

__all__ = ["calibration_report", "fit_temperature", "holdout_temperature", "softmax"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_EPS = 1e-15
_HOLDOUT_VOTES = 50_000  # votes sampled for the held-out-voice temperature: one scalar to fit
_HOLDOUT_MIN = 20  # fewer votes with another vote on their item: the temperature stays 1


def softmax(logits: FloatArray, temperature: float = 1.0, *, in_place: bool = False) -> FloatArray:
    """Row-wise softmax of ``logits / temperature`` (stable, never NaN for finite input);
    ``in_place`` reuses ``logits`` for the result."""
    z: FloatArray
    if in_place:
        z = logits if temperature == 1.0 else np.divide(logits, temperature, out=logits)
    else:
        z = logits / temperature
    columns = z.T  # reduced one answer at a time: much faster than axis=1 for few answers
    top = columns[0].copy()
    for column in columns[1:]:
        np.maximum(top, column, out=top)
    z -= top[:, None]
    np.exp(z, out=z)
    total = columns[0].copy()
    for column in columns[1:]:
        total += column
    z /= total[:, None]
    return z


def _nll(logits: FloatArray, y: IntArray, temperature: float) -> float:
    p = softmax(logits, temperature)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, _EPS, 1.0)).mean())


def _golden(loss: Callable[[float], float], lo: float, hi: float) -> float:
    """The T in [lo, hi] minimising ``loss(T)``: golden-section search on log T."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loss(math.exp(c)), loss(math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = loss(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = loss(math.exp(d))
    return math.exp((a + b) / 2)


def fit_temperature(
    logits: FloatArray, y: IntArray, *, lo: float = 0.05, hi: float = 20.0
) -> float:
    """Temperature minimising the log-loss of ``softmax(logits / T)`` on labelled rows.

    Golden-section search on log T (the loss is unimodal in T). Returns 1.0 without rows.
    """
    if len(y) == 0:
        return 1.0
    return _golden(lambda t: _nll(logits, y, t), lo, hi)


def holdout_temperature(
    logits: FloatArray,
    vote_loglik: FloatArray,
    vote_item: IntArray,
    *,
    lo: float = 0.05,
    hi: float = 20.0,
) -> float:
    """Temperature maximising how well each vote is predicted from the others on its item.

    ``logits`` (items × K) are log π + Σ log C_i[:, answer_i]; ``vote_loglik`` (votes × K) is
    log C_voice[:, answer] of each vote and ``vote_item`` its row in ``logits``. The loss is
    −mean log Σ_k softmax((logits − vote_loglik) / T)_k · C_voice[k, answer], over the votes
    whose item has another vote; with fewer than 20 of those T stays 1.
    """
    shared = np.bincount(vote_item, minlength=len(logits))[vote_item] > 1
    if shared.sum() < _HOLDOUT_MIN:  # a vote alone on its item has no others to predict it
        return 1.0
    vote_loglik, vote_item = vote_loglik[shared], vote_item[shared]
    if len(vote_item) > _HOLDOUT_VOTES:
        keep = np.random.default_rng(0).choice(len(vote_item), _HOLDOUT_VOTES, replace=False)
        vote_loglik, vote_item = vote_loglik[keep], vote_item[keep]
    others = logits[vote_item] - vote_loglik
    likelihood = np.exp(vote_loglik)

    def loss(t: float) -> float:
        p = (softmax(others, t) * likelihood).sum(axis=1)
        return float(-np.log(np.clip(p, _EPS, None)).mean())

    return _golden(loss, lo, hi)


def report_arrays(proba: FloatArray, y: IntArray, *, n_bins: int = 15) -> dict[str, float]:
    """Accuracy, log-loss, multi-class Brier and ECE (equal-width confidence bins)."""
    n = len(y)
    rows = np.arange(n)
    pred = proba.argmax(axis=1)
    conf = proba[rows, pred]
    correct = (pred == y).astype(np.float64)
    onehot = np.zeros_like(proba)
    onehot[rows, y] = 1.0
    bins = np.minimum((conf * n_bins).astype(np.intp), n_bins - 1)
    in_bin = np.bincount(bins, minlength=n_bins)
    gap = np.bincount(bins, weights=conf - correct, minlength=n_bins)
    ece = float(np.abs(gap).sum() / n)
    return {
        "n": float(n),
        "accuracy": float(correct.mean()),
        "log_loss": float(-np.log(np.clip(proba[rows, y], _EPS, 1.0)).mean()),
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "ece": ece if in_bin.sum() else 0.0,
    }


def calibration_report(
    proba: Mapping[Any, Mapping[Any, float]],
    gold: Mapping[Any, Any],
    *,
    n_bins: int = 15,
) -> dict[str, float]:
    """Score ``predict_proba`` output against ``gold`` on the items both share.

    Returns ``n``, ``accuracy``, ``log_loss`` (probabilities clipped at 1e-15), ``brier``
    (sum over answers of squared error, averaged over items) and ``ece`` (``n_bins``
    equal-width bins of the top probability). A gold answer absent from an item's
    distribution counts as probability 0.

    >>> calibration_report({"q": {"a": 0.8, "b": 0.2}}, {"q": "a"})["accuracy"]
    1.0
    """
    unknown = [it for it in gold if it not in proba]
    if unknown:
        raise InputError(f"gold names {len(unknown)} item(s) with no prediction: {unknown[:5]!r}")
    if not gold:
        raise InputError("calibration_report needs at least one gold item")
    answers: dict[Any, int] = {}
    for it in gold:
        for a in (*proba[it], gold[it]):
            answers.setdefault(a, len(answers))
    mat = np.zeros((len(gold), len(answers)))
    y = np.empty(len(gold), dtype=np.intp)
    for r, it in enumerate(gold):
        for a, p in proba[it].items():
            mat[r, answers[a]] = p
        y[r] = answers[gold[it]]
    return report_arrays(mat, y, n_bins=n_bins)
