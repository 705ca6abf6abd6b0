"""Fault injection: a seeded wrapper adding errors, latency, hangs and garbage to any voice.

>>> from ai_orchestration.errors import ProviderUnavailableError
>>> from ai_orchestration.testing import FaultyVoice, Faults, ScriptedVoice
>>> v = FaultyVoice(ScriptedVoice("a", ["ok"]), Faults(errors={ProviderUnavailableError: 0.3}))
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ai_orchestration.errors import ProviderUnavailableError, RateLimitedError, VoiceError
from ai_orchestration.policies._wrap import PolicyVoice, note_append
from ai_orchestration.voices import Usage, Voice, VoiceRequest, VoiceResponse

__all__ = ["GARBAGE_TEXTS", "Faults", "FaultyVoice", "Latency"]

GARBAGE_TEXTS: tuple[str, ...] = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    '{"answer": "Par',
    "\x00\x1b[31m\ufffd\ufffd",
    "",
    "As an AI language model, I cannot answer that.",
    "null",
)


@dataclass(frozen=True, slots=True)
class Latency:
    """Lognormal latency with the given median (``sigma=0``: fixed), capped at ``max_s``."""

    median_s: float
    sigma: float = 0.0
    max_s: float | None = None

    def sample(self, rng: random.Random) -> float:
        v = (
            self.median_s
            if self.sigma == 0
            else rng.lognormvariate(0.0, self.sigma) * self.median_s
        )
        return v if self.max_s is None else min(v, self.max_s)


@dataclass(frozen=True, slots=True)
class Faults:
    """What to inject, as per-call probabilities (summing to at most 1).

    ``errors`` maps a ``VoiceError`` class to its rate; a hang never answers (until
    cancelled); garbage answers one of ``GARBAGE_TEXTS``. ``retry_after`` goes on injected
    rate limits.
    """

    errors: Mapping[type[VoiceError], float] = field(default_factory=dict)
    hang_rate: float = 0.0
    garbage_rate: float = 0.0
    latency: Latency | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        rates = [*self.errors.values(), self.hang_rate, self.garbage_rate]
        if any(r < 0 for r in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {rates}")


Sleep = Callable[[float], Awaitable[None]]


class FaultyVoice(PolicyVoice):
    """Wrap ``inner`` and inject ``faults``, drawing from ``random.Random(seed)`` per call.

    ``down = True`` simulates a full outage (every call raises ``ProviderUnavailableError``).
    Each injected fault is listed under ``faults_injected`` on the current span; ``injected``
    counts what each call got: ``ok``, ``hang``, ``garbage``, ``down`` or the error class name.
    """

    def __init__(
        self,
        inner: Voice,
        faults: Faults = Faults(),
        *,
        seed: int = 0,
        sleep: Sleep = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        super().__init__(inner, name=name)
        self.faults = faults
        self.down = False
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._sleep = sleep

    def _draw(self) -> str | type[VoiceError]:
        u = self._rng.random()
        acc = 0.0
        for cls, rate in self.faults.errors.items():
            acc += rate
            if u < acc:
                return cls
        acc += self.faults.hang_rate
        if u < acc:
            return "hang"
        acc += self.faults.garbage_rate
        return "garbage" if u < acc else "ok"

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        if self.down:
            self.injected["down"] += 1
            note_append("faults_injected", "down")
            raise ProviderUnavailableError("injected outage", voice=self._name, status=503)
        fault = self._draw()
        latency = self.faults.latency.sample(self._rng) if self.faults.latency else 0.0
        garbage = GARBAGE_TEXTS[self._rng.randrange(len(GARBAGE_TEXTS))]
        kind = fault if isinstance(fault, str) else fault.__name__
        self.injected[kind] += 1
        if kind != "ok":
            note_append("faults_injected", kind)  # so tests can check policies left a trace
        if latency > 0:
            await self._sleep(latency)
        if fault == "hang":
            await asyncio.Event().wait()
        if fault == "garbage":
            return VoiceResponse(text=garbage, model=f"faulty:{self._name}", usage=Usage(calls=1))
        if isinstance(fault, type):
            raise self._error(fault)
        return await self.inner.respond(request)

    def _error(self, cls: type[VoiceError]) -> VoiceError:
        msg = f"injected {cls.__name__}"
        if issubclass(cls, RateLimitedError):
            return cls(msg, voice=self._name, retry_after=self.faults.retry_after)
        return cls(msg, voice=self._name)
