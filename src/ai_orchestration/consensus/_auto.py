"""``"auto"``: fit what the evidence favours, and say what was chosen and why.

With at least ``min_gold`` labelled items, candidates are scored by k-fold cross-validation
on the gold (each fold's items held out, everything else fitted): class-symmetric stacking
of the votes (:mod:`._stacking`), the same with per-(voice, context) weights when a context
is given, and semi-supervised Dawid–Skene (:class:`BayesianFusion` with the gold clamped).
The one with the lowest held-out log-loss (after temperature scaling on the same held-out
logits) wins, unless the best single voice on the training folds was more accurate on the
held-out folds: then the fusion defers to that voice wherever it answered. Dawid–Skene keeps
the temperature fitted on its held-out logits; a stacker, fitted by log-loss, keeps T = 1.

With less gold it fits Dawid–Skene EM (gold clamped when there is some) and sets the
temperature from the voices' estimated error correlation (:func:`design_effect`): the
unsupervised posterior otherwise counts voices that share errors as independent evidence.
Per request, :meth:`AutoFusion.from_reliability` weighs votes by the given accuracies.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from ai_orchestration.consensus._base import NEUTRAL_ACCURACY, Aggregator, log_odds
from ai_orchestration.consensus._bayes import BayesianFusion, symmetric_confusion
from ai_orchestration.consensus._calibration import fit_temperature, softmax
from ai_orchestration.consensus._data import VoteTable, parse_votes, sort_labels
from ai_orchestration.consensus._dependence import design_effect, error_correlation
from ai_orchestration.consensus._stacking import Stacker, fit_stacker
from ai_orchestration.errors import InputError

__all__ = ["AutoFusion"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Context = Mapping[Any, Hashable]
#: Median gold votes per voice below which Dawid–Skene EM joins the candidates.
_STACK_GOLD = 50


class AutoFusion(Aggregator):
    """The recommended method: stacking or Dawid–Skene as the gold allows, with a guard.

    ``fit(votes, gold=None, *, context=None)``: ``context`` maps item → a label the request
    carries (e.g. its category), used as a feature when cross-validation favours it.
    ``choice_`` and ``reason_`` say what was fitted and why; ``scores_`` holds the held-out
    accuracy and log-loss of every candidate.

    >>> votes = [{"item": i, "voice": v, "answer": "A"} for i in range(3) for v in "xyz"]
    >>> AutoFusion().fit_predict(votes)
    {0: 'A', 1: 'A', 2: 'A'}
    """

    method = "auto"

    def __init__(
        self, *, min_gold: int = 30, folds: int = 5, calibrate: bool = True, cv_folds: int = 5
    ) -> None:
        super().__init__(calibrate=calibrate, cv_folds=cv_folds)
        if min_gold < 2 * folds:
            raise InputError(f"AutoFusion min_gold {min_gold} must be at least 2 × folds")
        self.min_gold, self.folds = min_gold, folds
        self.choice_ = "weighted"
        self.reason_ = "not fitted: votes weighted by the neutral prior accuracy"
        self.scores_: dict[str, dict[str, float]] = {}
        self._contexts: list[Hashable] = []
        self._fit_context: Context = {}
        self._bayes: BayesianFusion | None = None
        self._stacker: Stacker | None = None
        self._deferral: tuple[str, float] | None = None  # (voice, its accuracy when it answers)
        self._fitted_temperature = 1.0

    # -- interface ----------------------------------------------------------------------------

    def fit(
        self, votes: Any, gold: Mapping[Any, Any] | None = None, *, context: Context | None = None
    ) -> Self:
        """Fit on ``votes`` with whatever ``gold`` exists; ``context`` maps item → label."""
        self._fit_context = dict(context or {})
        self._contexts = sort_labels(self._fit_context.values())
        self._bayes, self._stacker, self._deferral = None, None, None
        return super().fit(votes, gold)

    def predict_proba(
        self, votes: Any, *, context: Context | None = None
    ) -> dict[Any, dict[Any, float]]:
        table = parse_votes(votes, labels=self.labels_)
        proba = self._calibrated(table, self._context_index(table, context or {}))
        return {
            it: {a: float(p) for a, p in zip(table.labels, row, strict=True)}
            for it, row in zip(table.items, proba, strict=True)
        }

    def predict(self, votes: Any, *, context: Context | None = None) -> dict[Any, Any]:
        proba = self.predict_proba(votes, context=context)
        return {it: max(row, key=row.__getitem__) for it, row in proba.items()}

    @classmethod
    def from_reliability(cls, reliability: Mapping[str, float]) -> Self:
        agg = super().from_reliability(reliability)
        if agg.reliability_:
            agg.reason_ = "per request: votes weighted by the voices' learned accuracies"
        else:
            agg.reason_ = (
                f"per request, no history: every voice has the neutral accuracy "
                f"{NEUTRAL_ACCURACY:.3f}, so every vote counts alike"
            )
        return agg

    def explain(self) -> dict[str, Any]:
        """What was chosen, why, and the held-out scores behind the choice."""
        return {"chose": self.choice_, "why": self.reason_, "scores": self.scores_}

    # -- fitting ------------------------------------------------------------------------------

    def _fit(self, table: VoteTable, y: IntArray) -> None:
        n_gold = int((y >= 0).sum())
        if n_gold >= self.min_gold:
            self._fit_supervised(table, y, self._context_index(table, self._fit_context))
        else:
            self._fit_unsupervised(table, y, n_gold)

    def _fit_temperature(self, table: VoteTable, y: IntArray) -> float:
        return self._fitted_temperature

    def _fit_unsupervised(self, table: VoteTable, y: IntArray, n_gold: int) -> None:
        bayes = BayesianFusion(calibrate=False)
        bayes._fit(table, y)
        self._bayes = bayes
        self.reliability_ = bayes.reliability_
        rho = error_correlation(table, softmax(bayes._logits(table)))
        self._fitted_temperature = design_effect(table, rho)
        gold = f"{n_gold} gold item(s), fewer than {self.min_gold}"
        self.choice_ = "bayesian" if n_gold else "bayesian (unsupervised)"
        self.reason_ = (
            f"{gold}: Dawid–Skene EM{' with the gold clamped' if n_gold else ''}; "
            f"voices' error correlation {rho:.3f} → temperature {self._fitted_temperature:.2f}"
        )
        self.scores_ = {}

    def _fit_supervised(self, table: VoteTable, y: IntArray, context: IntArray | None) -> None:
        rows = np.flatnonzero(y >= 0)
        fold = np.random.default_rng(0).permutation(len(rows)) % self.folds
        candidates = self._candidates(table, y, context)
        oof = {c: np.empty((len(rows), table.n_labels)) for c in candidates}
        defer = np.empty((len(rows), table.n_labels))
        for f in range(self.folds):
            held = rows[fold == f]
            y_fold = y.copy()
            y_fold[held] = -1
            for c in candidates:
                oof[c][fold == f] = self._candidate(c, table, y_fold, context)[held]
            voice, acc = _best_voice(table, y_fold)
            defer[fold == f] = _defer_logits(table, voice, acc, oof[candidates[0]][fold == f], held)
        temps = {c: _temperature(z, y[rows]) for c, z in oof.items()}
        losses = {c: _item_losses(oof[c], y[rows], temps[c]) for c in candidates}
        self.scores_ = {c: _scores(oof[c], y[rows], losses[c], temps[c]) for c in candidates}
        self.scores_["best voice"] = _scores(defer, y[rows], _item_losses(defer, y[rows], 1.0), 1.0)
        winner = _simplest_within_one_se(candidates, losses)
        self._refit(winner, table, y, context)
        # A stacker is its own calibrator (fitted by log-loss); the held-out temperature, fitted
        # on fold models that saw 80 % of the gold, over-softens the final one (MMLU-Pro dev,
        # 10 % gold, 5 splits: ECE 0.036 with it, 0.028 without).
        self._fitted_temperature = 1.0 if winner.startswith("stacking") else temps[winner]
        right = (oof[winner].argmax(axis=1) == y[rows]).astype(np.float64)
        alone = (defer.argmax(axis=1) == y[rows]).astype(np.float64)
        self._apply_guard(winner, table, y, right - alone)

    def _candidates(self, table: VoteTable, y: IntArray, context: IntArray | None) -> list[str]:
        """Simplest first. Stacking needs gold per voice; Dawid–Skene EM is fitted only when
        the median voice has fewer than ``_STACK_GOLD`` gold votes (sparse crowds)."""
        gold_votes = np.bincount(table.voice[y[table.item] >= 0], minlength=len(table.voices))
        out = ["stacking"]
        if float(np.median(gold_votes)) < _STACK_GOLD:
            out.append("bayesian")
        if context is not None:
            out.append("stacking+context")
        return out

    def _candidate(
        self, name: str, table: VoteTable, y: IntArray, context: IntArray | None
    ) -> FloatArray:
        if name == "bayesian":
            bayes = BayesianFusion(calibrate=False)
            bayes._fit(table, y)
            return bayes._logits(table)
        ctx = context if name == "stacking+context" else None
        stacker = fit_stacker(
            table, y, context=ctx, contexts=self._contexts if ctx is not None else ()
        )
        return stacker.logits(table, ctx)

    def _refit(self, winner: str, table: VoteTable, y: IntArray, context: IntArray | None) -> None:
        if winner == "bayesian":
            self._bayes = BayesianFusion(calibrate=False)
            self._bayes._fit(table, y)
            self.reliability_ = self._bayes.reliability_
        else:
            ctx = context if winner == "stacking+context" else None
            contexts = self._contexts if ctx is not None else ()
            self._stacker = fit_stacker(table, y, context=ctx, contexts=contexts)
            if ctx is None:
                self._contexts = []
            self.reliability_ = _gold_accuracy(table, y)
        self.choice_ = winner

    def _apply_guard(self, winner: str, table: VoteTable, y: IntArray, gain: FloatArray) -> None:
        """Defer to the best voice unless the fusion was more accurate on the held-out folds.
        (Deferring unless the gain exceeds one standard error was measured too: on MMLU-Pro with
        10 % gold it deferred on all three splits and gave up the fusion's +1.5 points.)"""
        fused, alone = self.scores_[winner]["accuracy"], self.scores_["best voice"]["accuracy"]
        n = int((y >= 0).sum())
        if float(gain.mean()) <= 0.0:
            voice, acc = _best_voice(table, y)
            self._deferral = (voice, acc)
            self.choice_ = f"best voice ({voice})"
            self.reason_ = (
                f"{n} gold items, {self.folds}-fold held-out accuracy: {winner} {fused:.3f} does "
                f"not beat {voice} alone ({alone:.3f}); deferring to it where it answered"
            )
        else:
            self.reason_ = (
                f"{n} gold items, {self.folds}-fold held-out log-loss lowest for {winner} "
                f"(accuracy {fused:.3f}, best single voice {alone:.3f})"
            )

    # -- prediction ---------------------------------------------------------------------------

    def _context_index(self, table: VoteTable, context: Context) -> IntArray | None:
        if not context or not self._contexts:
            return None
        index = {c: i for i, c in enumerate(self._contexts)}
        return np.asarray([index.get(context.get(it), -1) for it in table.items], dtype=np.intp)

    def _calibrated(self, table: VoteTable, context: IntArray | None) -> FloatArray:
        logits = self._scores_of(table, context)
        if not np.isfinite(logits).all():
            raise InputError("auto: votes produced non-finite scores")
        return softmax(logits, self.temperature_)

    def _scores_of(self, table: VoteTable, context: IntArray | None) -> FloatArray:
        if self._stacker is not None:
            logits = self._stacker.logits(table, context)
        elif self._bayes is not None:
            logits = self._bayes._logits(table)
        else:  # per request from accuracies: the one-coin weighted vote
            w = log_odds(self.voice_reliability(table), table.n_labels)
            logits = table.counts(w[table.voice])
        if self._deferral is not None:
            voice, acc = self._deferral
            logits = _defer_logits(table, voice, acc, logits / self.temperature_, None)
            logits = logits * self.temperature_  # the voice's own probability stays unscaled
        return logits

    def _logits(self, table: VoteTable) -> FloatArray:
        return self._scores_of(table, None)


def _gold_accuracy(table: VoteTable, y: IntArray) -> dict[str, float]:
    """Each voice's accuracy on the gold items it answered (Beta(2, 1)-smoothed)."""
    gold = y[table.item] >= 0
    right = np.bincount(
        table.voice[gold], weights=(table.label == y[table.item])[gold], minlength=len(table.voices)
    )
    n = np.bincount(table.voice[gold], minlength=len(table.voices))
    acc = (right + 2.0) / (n + 3.0)
    return dict(zip(table.voices, acc.tolist(), strict=True))


def _best_voice(table: VoteTable, y: IntArray) -> tuple[str, float]:
    """The voice right on most gold items (a failed or missing vote counts as wrong), with
    its accuracy on the gold items it answered."""
    gold = y[table.item] >= 0
    right = np.bincount(
        table.voice[gold], weights=(table.label == y[table.item])[gold], minlength=len(table.voices)
    )
    best = int(np.argmax(right))
    answered = int(np.sum(table.voice[gold] == best))
    return table.voices[best], float((right[best] + 1.0) / (answered + 2.0))


def _defer_logits(
    table: VoteTable, voice: str, acc: float, fallback: FloatArray, rows: IntArray | None
) -> FloatArray:
    """The voice's answer at its accuracy where it answered (rows of ``rows``, or all items),
    ``fallback`` elsewhere."""
    items = np.arange(table.n_items) if rows is None else rows
    out = fallback.copy()
    if voice not in table.voices:
        return out
    pos = np.full(table.n_items, -1, dtype=np.intp)
    pos[items] = np.arange(len(items))
    mine = (table.voice == table.voices.index(voice)) & (pos[table.item] >= 0)
    acc = float(np.clip(acc, 1e-3, 1 - 1e-3))
    log_conf = np.log(symmetric_confusion(acc, table.n_labels))
    out[pos[table.item[mine]]] = log_conf[:, table.label[mine]].T
    return out


def _temperature(logits: FloatArray, y: IntArray) -> float:
    t = fit_temperature(logits, y)
    return t if np.isfinite(t) else 1.0


def _item_losses(logits: FloatArray, y: IntArray, temperature: float) -> FloatArray:
    p = softmax(logits, temperature)[np.arange(len(y)), y]
    out: FloatArray = -np.log(np.clip(p, 1e-15, 1.0))
    return out


def _scores(
    logits: FloatArray, y: IntArray, losses: FloatArray, temperature: float
) -> dict[str, float]:
    return {
        "accuracy": float((logits.argmax(axis=1) == y).mean()),
        "log_loss": float(losses.mean()),
        "temperature": temperature,
    }


def _simplest_within_one_se(candidates: list[str], losses: Mapping[str, FloatArray]) -> str:
    """The lowest held-out log-loss, unless a simpler candidate (earlier in the list) is within
    one standard error of the paired per-item difference: richer models must earn their keep."""
    best = min(candidates, key=lambda c: float(losses[c].mean()))
    for c in candidates:
        if c == best:
            return c
        diff = losses[best] - losses[c]
        if float(diff.mean()) > -float(diff.std(ddof=1)) / np.sqrt(len(diff)):
            return c
    return best
