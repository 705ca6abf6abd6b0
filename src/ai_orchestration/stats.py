"""Live per-voice statistics: rolling latency percentiles, error rate and cost.

The engine's voice-call seam records every call (``record_call``, one cheap call) into the
registry of the scope it runs in — an ``AiOrchestration`` opens ``recording_stats`` with its
own registry around each run; outside any scope nothing is recorded. Hedging and routing read
the same registry. Statistics roll over the last ``window`` calls::

    >>> from ai_orchestration.stats import StatsRegistry
    >>> reg = StatsRegistry(window=4)
    >>> for s in (0.1, 0.2, 0.3, 0.4):
    ...     reg.record("a", s)
    >>> reg.get("a").p50
    0.2
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["StatsRegistry", "StatsSnapshot", "VoiceStats", "record_call", "recording_stats"]


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """A point-in-time copy of one voice's statistics (latencies in seconds)."""

    voice: str
    calls: int
    errors: int
    window_calls: int
    error_rate: float
    p50: float | None
    p95: float | None
    p99: float | None
    mean_cost_usd: float
    total_cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class VoiceStats:
    """Rolling statistics of one voice over its last ``window`` calls.

    ``record`` keeps a sorted copy of the window up to date (a bisect and a move of at most
    ``window`` floats), so a percentile is an index lookup even when asked on every call
    (hedging).
    """

    __slots__ = (
        "_fail",
        "_fails_in_window",
        "_i",
        "_lat",
        "_sorted",
        "calls",
        "errors",
        "name",
        "total_cost_usd",
        "window",
    )

    def __init__(self, name: str, window: int = 256) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.name = name
        self.window = window
        self._lat: list[float] = [0.0] * window
        self._fail: list[bool] = [False] * window
        self._i = 0
        self._fails_in_window = 0
        self._sorted: list[float] = []  # the latencies of the window, ascending
        self.calls = 0
        self.errors = 0
        self.total_cost_usd = 0.0

    def record(self, latency_s: float, ok: bool = True, cost_usd: float = 0.0) -> None:
        """Record one finished call (cancelled calls are not recorded)."""
        i = self._i
        window = self._sorted
        if self.calls >= self.window:  # evict the sample this slot held
            del window[bisect_left(window, self._lat[i])]
            if self._fail[i]:
                self._fails_in_window -= 1
        insort(window, latency_s)
        self._lat[i] = latency_s
        self._fail[i] = not ok
        if not ok:
            self._fails_in_window += 1
            self.errors += 1
        self._i = (i + 1) % self.window
        self.calls += 1
        self.total_cost_usd += cost_usd

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (nearest rank) of recent latencies; None before any call."""
        s = self._sorted
        n = len(s)
        if n == 0:
            return None
        return s[max(1, math.ceil(q * n)) - 1]

    @property
    def p50(self) -> float | None:
        return self.quantile(0.50)

    @property
    def p95(self) -> float | None:
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    @property
    def window_calls(self) -> int:
        return len(self._sorted)

    @property
    def error_rate(self) -> float:
        """Share of failed calls among the last ``window`` calls (0.0 before any call)."""
        n = len(self._sorted)
        return self._fails_in_window / n if n else 0.0

    @property
    def mean_cost_usd(self) -> float:
        return self.total_cost_usd / self.calls if self.calls else 0.0

    def snapshot(self) -> StatsSnapshot:
        return StatsSnapshot(
            voice=self.name,
            calls=self.calls,
            errors=self.errors,
            window_calls=self.window_calls,
            error_rate=self.error_rate,
            p50=self.p50,
            p95=self.p95,
            p99=self.p99,
            mean_cost_usd=self.mean_cost_usd,
            total_cost_usd=self.total_cost_usd,
        )


class StatsRegistry:
    """Statistics of every voice by name (names are unique within one owner's voices)."""

    __slots__ = ("_by_name", "window")

    def __init__(self, window: int = 256) -> None:
        self.window = window
        self._by_name: dict[str, VoiceStats] = {}

    def record(self, voice: str, latency_s: float, ok: bool = True, cost_usd: float = 0.0) -> None:
        st = self._by_name.get(voice)
        if st is None:
            st = self._by_name[voice] = VoiceStats(voice, self.window)
        st.record(latency_s, ok, cost_usd)

    def get(self, voice: str) -> VoiceStats | None:
        return self._by_name.get(voice)

    def warm(self, calls: Iterable[tuple[str, float, bool, float]]) -> None:
        """Seed voices that have no statistics in this process yet with past calls
        ((voice, latency_s, ok, cost_usd), oldest first), e.g. from the state folder."""
        fresh: dict[str, VoiceStats] = {}
        for voice, latency_s, ok, cost_usd in calls:
            st = fresh.get(voice)
            if st is None:
                if voice in self._by_name:
                    continue
                st = fresh[voice] = VoiceStats(voice, self.window)
            st.record(latency_s, ok, cost_usd)
        for voice, st in fresh.items():
            self._by_name.setdefault(voice, st)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def snapshot(self) -> dict[str, StatsSnapshot]:
        return {name: self._by_name[name].snapshot() for name in self.names()}

    def reset(self, voice: str | None = None) -> None:
        """Forget one voice's statistics, or everything."""
        if voice is None:
            self._by_name.clear()
        else:
            self._by_name.pop(voice, None)

    def format_table(self) -> str:
        """A plain-text table of every voice (what ``ai-orchestration stats`` prints)."""
        head = f"{'voice':<24} {'calls':>7} {'err%':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        lines = [head + f" {'cost $':>10}"]
        for s in self.snapshot().values():
            lines.append(
                f"{s.voice:<24} {s.calls:>7} {100 * s.error_rate:>6.1f} {_ms(s.p50):>8} "
                f"{_ms(s.p95):>8} {_ms(s.p99):>8} {s.total_cost_usd:>10.4f}"
            )
        return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{1000 * v:.1f}"


_recording: ContextVar[StatsRegistry | None] = ContextVar("ai_orchestration_stats", default=None)


@contextmanager
def recording_stats(registry: StatsRegistry) -> Iterator[StatsRegistry]:
    """Voice calls made inside (and in tasks started inside) are recorded in ``registry``."""
    token = _recording.set(registry)
    try:
        yield registry
    finally:
        _recording.reset(token)


def record_call(voice: str, latency_s: float, ok: bool = True, cost_usd: float = 0.0) -> None:
    """Record one finished call in the current ``recording_stats`` registry, if any."""
    registry = _recording.get()
    if registry is not None:
        registry.record(voice, latency_s, ok, cost_usd)
