"""Rate limits per provider: token buckets on requests/min and tokens/min, concurrency caps."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from ai_orchestration.errors import RateLimitedError
from ai_orchestration.policies._clock import Clock, system_clock
from ai_orchestration.policies._wrap import PolicyVoice, VoiceCall, note
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse, identity_of
from ai_orchestration.voices._types import estimate_tokens

__all__ = [
    "Limiting",
    "RateLimitPolicy",
    "RateLimitRegistry",
    "RateLimiter",
    "RateLimits",
    "TokenBucket",
    "estimate_tokens",
    "limiter_key",
]


class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second. ``reserve`` may go into debt and
    returns how long the caller must wait for its reservation (0 when available now)."""

    __slots__ = ("_last", "capacity", "clock", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, clock: Clock = system_clock) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be > 0")
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.tokens = capacity
        self._last = clock.now()

    def _refill(self) -> None:
        now = self.clock.now()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def reserve(self, n: float) -> float:
        self._refill()
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def refund(self, n: float) -> None:
        """Give back ``n`` tokens (negative ``n`` charges more after the fact)."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + n)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits of one provider; ``None`` means unlimited. ``max_wait_s`` bounds the local wait
    (a longer wait raises ``RateLimitedError`` with ``retry_after``)."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_concurrency: int | None = None
    max_wait_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrency"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")


class _LoopCap(threading.local):
    """The concurrency cap of the loop this thread runs (a semaphore belongs to one loop)."""

    loop: asyncio.AbstractEventLoop | None = None
    sem: asyncio.Semaphore | None = None


class RateLimiter:
    """The shared buckets and concurrency cap of one provider key."""

    def __init__(self, key: str, limits: RateLimits, clock: Clock = system_clock) -> None:
        self.key, self.limits, self.clock = key, limits, clock
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = TokenBucket(rpm / 60, rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm / 60, tpm, clock) if tpm else None
        self._cap = _LoopCap()

    def semaphore(self) -> asyncio.Semaphore | None:
        cap = self.limits.max_concurrency
        if cap is None:
            return None
        loop = asyncio.get_running_loop()
        held = self._cap
        if held.sem is None or held.loop is not loop:
            held.loop, held.sem = loop, asyncio.Semaphore(cap)
        return held.sem

    async def admit(self, estimate: int) -> None:
        """Wait for a request slot and ``estimate`` tokens, or raise ``RateLimitedError``."""
        wait = 0.0
        if self.requests is not None:
            wait = self.requests.reserve(1)
        if self.tokens is not None:
            wait = max(wait, self.tokens.reserve(estimate))
        if wait <= 0:
            return
        max_wait = self.limits.max_wait_s
        if max_wait is not None and wait > max_wait:
            self._undo(estimate)
            raise RateLimitedError(
                f"local rate limit for {self.key!r}: would wait {wait:.2f}s",
                voice=self.key,
                status=None,
                retry_after=wait,
            )
        note("rate_limit_wait_s", wait)
        try:
            await self.clock.sleep(wait)
        except asyncio.CancelledError:
            self._undo(estimate)
            raise

    def _undo(self, estimate: int) -> None:
        if self.requests is not None:
            self.requests.refund(1)
        if self.tokens is not None:
            self.tokens.refund(estimate)

    def settle(self, estimate: int, used: int) -> None:
        """Correct the token bucket with the tokens the call really used."""
        if self.tokens is not None and used:
            self.tokens.refund(estimate - used)


class RateLimitRegistry:
    """Limiters by key. Whoever builds the policies owns one (an ``AiOrchestration`` its
    own); pass the same registry to share limits on purpose (e.g. one API account)."""

    def __init__(self) -> None:
        self._by_key: dict[str, RateLimiter] = {}

    def get(self, key: str, limits: RateLimits, clock: Clock = system_clock) -> RateLimiter:
        rl = self._by_key.get(key)
        if rl is None:
            rl = self._by_key[key] = RateLimiter(key, limits, clock)
        return rl

    def reset(self) -> None:
        self._by_key.clear()


def provider_of(voice_name: str) -> str:
    """``"openai:gpt-4o"`` → ``"openai"``; a name without a provider is its own key."""
    return voice_name.split(":", 1)[0]


def limiter_key(voice: Voice, provider: str | None = None) -> str:
    """Whose limits a voice's calls count against: its provider (``provider`` when given,
    else its identity's, else the voice name's prefix ``"openai"`` of ``"openai:gpt-4o"``)
    at its endpoint (an account's limits hold per endpoint, for every model there)."""
    ident = identity_of(voice)
    key = provider or ident.provider or provider_of(voice.name)
    return f"{key}@{ident.endpoint}" if ident.endpoint else key


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """Apply shared limits under ``key`` in ``registry`` (default key: ``limiter_key`` of
    the voice; default registry: this policy's own)."""

    limits: RateLimits
    key: str | None = None
    registry: RateLimitRegistry = field(default_factory=RateLimitRegistry, compare=False)
    clock: Clock = field(default=system_clock, compare=False)

    def wrap(self, voice: Voice) -> Voice:
        limiter = self.registry.get(self.key or limiter_key(voice), self.limits, self.clock)
        return PolicyVoice(voice, Limiting(limiter))


@dataclass(frozen=True, slots=True)
class Limiting:
    """One limiter as voice middleware: concurrency cap, then request and token buckets."""

    limiter: RateLimiter

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        limiter = self.limiter
        estimate = estimate_tokens(request) if limiter.tokens is not None else 0
        sem = limiter.semaphore()
        if sem is None:
            await limiter.admit(estimate)
            response = await call_next(request)
        else:
            async with sem:
                await limiter.admit(estimate)
                response = await call_next(request)
        limiter.settle(estimate, response.usage.total_tokens)
        return response
