"""Online voice reliability: Beta counts per voice, updated by feedback, persisted as JSON.

Every voice starts from the neutral prior Beta(2, 1) (mean accuracy 2/3, weakly held), so
with no history all voices weigh the same. ``update(votes, correct_answer)`` adds one
correct or wrong count per valid vote; answers are compared after normalisation. With a
``path`` the counts are loaded from it and every update is written back atomically (a temp
file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ai_orchestration.consensus._base import NEUTRAL_PRIOR
from ai_orchestration.consensus._text import normalise
from ai_orchestration.consensus._types import Vote
from ai_orchestration.errors import InputError, StoreError

__all__ = ["ReliabilityTracker"]

_VERSION = 1


class ReliabilityTracker:
    """Per-voice accuracy learned from feedback.

    >>> t = ReliabilityTracker()
    >>> t.update([Vote("a", "Paris"), Vote("b", "Lyon")], "paris")
    >>> t.reliability()
    {'a': 0.75, 'b': 0.5}
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        prior: tuple[float, float] = NEUTRAL_PRIOR,
    ) -> None:
        if min(prior) <= 0:
            raise InputError(f"ReliabilityTracker prior pseudo-counts must be positive: {prior!r}")
        self.path = Path(path) if path is not None else None
        self.prior = prior
        self._counts: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._counts = self._load(self.path)

    @staticmethod
    def _load(path: Path) -> dict[str, list[float]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            voices = data["voices"]
            return {str(v): [float(c["correct"]), float(c["wrong"])] for v, c in voices.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"reliability file {path} is unreadable: {exc}") from exc

    def update(self, votes: Iterable[Vote], correct_answer: Any) -> None:
        """Count each valid vote as right or wrong against ``correct_answer``; persist."""
        self.add(self.counts_for(votes, correct_answer))

    @staticmethod
    def counts_for(votes: Iterable[Vote], correct_answer: Any) -> dict[str, tuple[float, float]]:
        """What ``update`` adds: (1, 0) for each valid vote that is right, (0, 1) if wrong."""
        truth = normalise(correct_answer)
        out: dict[str, tuple[float, float]] = {}
        for vote in votes:
            if vote.valid:
                right = normalise(vote.answer) == truth
                c, w = out.get(vote.voice, (0.0, 0.0))
                out[vote.voice] = (c + right, w + (not right))
        return out

    def add(self, counts: Mapping[str, tuple[float, float]]) -> None:
        """Add (correct, wrong) counts per voice; persist to ``path`` when there is one."""
        with self._lock:
            for voice, (correct, wrong) in counts.items():
                held = self._counts.setdefault(voice, [0.0, 0.0])
                held[0] += correct
                held[1] += wrong
            if self.path is not None:
                self._save(self.path)

    def replace(self, counts: Mapping[str, tuple[float, float]]) -> None:
        """Take these counts as the whole history (e.g. read from a store that several
        workers share); nothing is written."""
        with self._lock:
            self._counts = {v: [float(c), float(w)] for v, (c, w) in counts.items()}

    def _save(self, path: Path) -> None:
        payload = {
            "version": _VERSION,
            "prior": list(self.prior),
            "voices": {
                v: {"correct": c[0], "wrong": c[1]} for v, c in sorted(self._counts.items())
            },
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=1)
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(f"cannot write reliability file {path}: {exc}") from exc

    def reliability(self) -> dict[str, float]:
        """Posterior mean accuracy of every voice with history."""
        a, b = self.prior
        with self._lock:
            return {v: (c[0] + a) / (c[0] + c[1] + a + b) for v, c in self._counts.items()}

    def has_history(self, voice: str) -> bool:
        """True once feedback has counted at least one vote of ``voice``."""
        with self._lock:
            return sum(self._counts.get(voice, (0.0, 0.0))) > 0

    def counts(self) -> Mapping[str, tuple[float, float]]:
        """(correct, wrong) feedback counts per voice."""
        with self._lock:
            return {v: (c[0], c[1]) for v, c in self._counts.items()}

    @property
    def neutral(self) -> float:
        """The accuracy assumed for a voice without history."""
        return self.prior[0] / (self.prior[0] + self.prior[1])
