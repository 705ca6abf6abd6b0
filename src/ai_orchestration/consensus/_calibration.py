"""Calibration: temperature scaling and the calibration report (accuracy, log-loss, Brier, ECE)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_orchestration.errors import InputError

__all__ = ["calibration_report", "fit_temperature", "softmax"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_EPS = 1e-15


def softmax(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    """Row-wise softmax of ``logits / temperature`` (stable, never NaN for finite input)."""
    z: FloatArray = logits / temperature
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


def fit_temperature(
    logits: FloatArray, y: IntArray, *, lo: float = 0.05, hi: float = 20.0
) -> float:
    """Temperature minimising the log-loss of ``softmax(logits / T)`` on labelled rows.

    Golden-section search on log T (the loss is unimodal in T). Returns 1.0 without rows.
    """
    if len(y) == 0:
        return 1.0
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = _nll(logits, y, math.exp(c)), _nll(logits, y, math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = _nll(logits, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = _nll(logits, y, math.exp(d))
    return math.exp((a + b) / 2)


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
