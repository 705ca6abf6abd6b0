"""Circuit breakers per voice identity, kept in a registry owned by whoever builds them.

closed ──(failure rate ≥ threshold over the window, with ≥ min_calls)──► open
open ──(cool-down elapsed)──► half-open ──(``probes`` successes)──► closed
half-open ──(a probe fails)──► open
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ai_orchestration._policy import StepCall
from ai_orchestration.errors import (
    AiOrchestrationError,
    BadRequestError,
    CircuitOpenError,
    VoiceError,
)
from ai_orchestration.policies._clock import Clock, system_clock
from ai_orchestration.policies._wrap import (
    PolicyVoice,
    ResponseCoroutine,
    VoiceCall,
    note,
    note_append,
)
from ai_orchestration.voices import Voice, VoiceRequest, identity_of

__all__ = [
    "CircuitBreaker",
    "CircuitPolicy",
    "CircuitRegistry",
    "CircuitSettings",
    "CircuitState",
    "Guarding",
    "circuit_key",
    "counts_as_failure",
]

log = logging.getLogger("ai_orchestration.circuit")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitSettings:
    """When a circuit opens and how it recovers."""

    failure_rate: float = 0.5
    min_calls: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0
    probes: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {self.failure_rate}")
        if self.min_calls < 1 or self.probes < 1:
            raise ValueError("min_calls and probes must be >= 1")
        if self.window_s <= 0 or self.cooldown_s < 0:
            raise ValueError("window_s must be > 0 and cooldown_s >= 0")


def counts_as_failure(exc: BaseException) -> bool:
    """Provider failures count; the caller's own faults (bad request, budget, deadline) do not."""
    if isinstance(exc, VoiceError):
        return not isinstance(exc, BadRequestError | CircuitOpenError)
    return isinstance(exc, Exception) and not isinstance(exc, AiOrchestrationError)


class CircuitBreaker:
    """One circuit's state machine. Not tied to an event loop; safe to share between runs."""

    __slots__ = (
        "_fails",
        "_in_flight",
        "_opened_at",
        "_probe_ok",
        "_state",
        "_window",
        "clock",
        "key",
        "settings",
    )

    def __init__(self, key: str, settings: CircuitSettings, clock: Clock = system_clock) -> None:
        self.key, self.settings, self.clock = key, settings, clock
        self._state = CircuitState.CLOSED
        self._window: deque[tuple[float, bool]] = deque()
        self._fails = 0
        self._opened_at = 0.0
        self._in_flight = 0
        self._probe_ok = 0

    @property
    def state(self) -> CircuitState:
        if (
            self._state is CircuitState.OPEN
            and self.clock.now() - self._opened_at >= self.settings.cooldown_s
        ):
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    def available(self) -> bool:
        """Would a call be let through now? (Routing reads this; it costs no request.)"""
        state = self.state
        if state is CircuitState.HALF_OPEN:
            return self._in_flight < self.settings.probes
        return state is CircuitState.CLOSED

    def acquire(self) -> bool:
        """Let a call through or raise ``CircuitOpenError``; True when the call is a probe."""
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.HALF_OPEN and self._in_flight < self.settings.probes:
            self._in_flight += 1
            return True
        wait = max(0.0, self._opened_at + self.settings.cooldown_s - self.clock.now())
        raise CircuitOpenError(
            f"circuit {self.key!r} is {state} (retry in {wait:.1f}s)", voice=self.key
        )

    def on_success(self, probe: bool) -> None:
        if probe:
            self._in_flight -= 1
            if self._state is CircuitState.HALF_OPEN:
                self._probe_ok += 1
                if self._probe_ok >= self.settings.probes:
                    self._transition(CircuitState.CLOSED)
            return
        self._add(False)

    def on_failure(self, probe: bool) -> None:
        if probe:
            self._in_flight -= 1
            if self._state is CircuitState.HALF_OPEN:
                self._open()
            return
        self._add(True)
        s = self.settings
        n = len(self._window)
        if (
            self._state is CircuitState.CLOSED
            and n >= s.min_calls
            and self._fails >= s.failure_rate * n
        ):
            self._open()

    def on_neutral(self, probe: bool) -> None:
        """The call ended without telling us about the provider (cancelled, caller's fault)."""
        if probe:
            self._in_flight -= 1

    def _add(self, failed: bool) -> None:
        now = self.clock.now()
        w = self._window
        w.append((now, failed))
        self._fails += failed
        horizon = now - self.settings.window_s
        while w and w[0][0] < horizon:
            self._fails -= w.popleft()[1]

    def _open(self) -> None:
        self._opened_at = self.clock.now()
        self._transition(CircuitState.OPEN)

    def _transition(self, state: CircuitState) -> None:
        log.info("circuit %r: %s -> %s", self.key, self._state, state)
        self._state = state
        self._probe_ok = 0
        if state is not CircuitState.HALF_OPEN:
            self._window.clear()
            self._fails = 0

    def snapshot(self) -> dict[str, Any]:
        n = len(self._window)
        return {
            "key": self.key,
            "state": str(self.state),
            "window_calls": n,
            "failure_rate": self._fails / n if n else 0.0,
        }


class CircuitRegistry:
    """Every circuit by key. Whoever builds the policies owns one (an ``AiOrchestration``
    its own); pass the same registry to share circuits on purpose."""

    def __init__(self) -> None:
        self._by_key: dict[str, CircuitBreaker] = {}

    def get(
        self, key: str, settings: CircuitSettings | None = None, clock: Clock = system_clock
    ) -> CircuitBreaker:
        """The circuit for ``key``, created with ``settings`` on first use."""
        cb = self._by_key.get(key)
        if cb is None:
            cb = self._by_key[key] = CircuitBreaker(key, settings or CircuitSettings(), clock)
        return cb

    def available(self, key: str) -> bool:
        """True unless ``key``'s circuit exists and refuses calls now."""
        cb = self._by_key.get(key)
        return cb is None or cb.available()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: self._by_key[k].snapshot() for k in sorted(self._by_key)}

    def reset(self) -> None:
        self._by_key.clear()


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """Guard calls with the circuit for ``key`` in ``registry`` (default key: the wrapped
    voice's identity, ``provider:model@endpoint``; default registry: this policy's own).

    >>> from ai_orchestration.testing import FakeClock
    >>> p = CircuitPolicy(key="openai:gpt-4o", registry=CircuitRegistry(), clock=FakeClock())
    """

    key: str | None = None
    settings: CircuitSettings = CircuitSettings()
    registry: CircuitRegistry = field(default_factory=CircuitRegistry, compare=False)
    clock: Clock = field(default=system_clock, compare=False)

    def breaker(self, default_key: str) -> CircuitBreaker:
        return self.registry.get(self.key or default_key, self.settings, self.clock)

    def wrap(self, voice: Voice) -> Voice:
        return PolicyVoice(voice, Guarding(self.breaker(identity_of(voice).key)))

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        return await _guarded(self.breaker(step), call)


def circuit_key(voice: Voice) -> str:
    """The key of the circuit guarding ``voice``: the outermost circuit among its policy
    layers, else its identity's key (what a ``CircuitPolicy`` would use)."""
    layer: Any = voice
    while isinstance(layer, PolicyVoice):
        if isinstance(layer.middleware, Guarding):
            return layer.middleware.breaker.key
        layer = layer.inner
    return identity_of(voice).key


async def _guarded(cb: CircuitBreaker, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        probe = cb.acquire()
    except CircuitOpenError:
        note_append("circuit_refused", cb.key)
        raise
    if probe:
        note("circuit_probe", cb.key)
    try:
        result = await call(*args)
    except BaseException as exc:
        if counts_as_failure(exc):
            cb.on_failure(probe)
        else:
            cb.on_neutral(probe)
        raise
    cb.on_success(probe)
    return result


@dataclass(frozen=True, slots=True)
class Guarding:
    """One circuit as voice middleware."""

    breaker: CircuitBreaker

    def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> ResponseCoroutine:
        out: ResponseCoroutine = _guarded(self.breaker, call_next, request)
        return out  # the guard's coroutine: no extra frame
