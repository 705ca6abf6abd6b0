"""Retry with exponential backoff and full jitter, honouring Retry-After, retryable errors only."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ai_orchestration._policy import StepCall
from ai_orchestration.errors import RateLimitedError, StepError, VoiceError
from ai_orchestration.policies._clock import Clock, system_clock
from ai_orchestration.policies._timeout import remaining_time
from ai_orchestration.policies._wrap import (
    PolicyVoice,
    ResponseCoroutine,
    VoiceCall,
    note,
    note_append,
)
from ai_orchestration.voices import Voice, VoiceRequest

__all__ = ["RetryPolicy", "Retrying", "is_retryable"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """True for a ``VoiceError`` marked retryable, also when wrapped in a ``StepError``."""
    if isinstance(exc, VoiceError):
        return exc.retryable
    if isinstance(exc, StepError) and exc.__cause__ is not None:
        return is_retryable(exc.__cause__)
    return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry retryable failures up to ``max_attempts`` times in all.

    The n-th retry waits ``uniform(0, min(max_delay, base_delay * multiplier**(n-1)))`` (full
    jitter) or, for a rate limit with ``retry_after``, at least that long. It gives up early —
    raising the last error — when the wait would pass the enclosing deadline or
    ``retry_after`` exceeds ``max_retry_after``. ``seed``/``rng`` make jitter reproducible.

    >>> RetryPolicy(max_attempts=3, base_delay=0.1, seed=7).backoff(1) <= 0.1
    True
    """

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    max_retry_after: float = 60.0
    seed: int | None = None
    clock: Clock = field(default=system_clock, compare=False)
    rng: random.Random | None = field(default=None, compare=False)
    retry_if: Callable[[BaseException], bool] = field(default=is_retryable, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("base_delay and max_delay must be >= 0 and multiplier >= 1")
        if self.rng is None:
            object.__setattr__(self, "rng", random.Random(self.seed))

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number ``retry`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))
        assert self.rng is not None
        return self.rng.uniform(0.0, cap)

    def delay_for(self, exc: BaseException, retry: int) -> float | None:
        """How long to wait before ``retry``, or None to give up now."""
        delay = self.backoff(retry)
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            if exc.retry_after > self.max_retry_after:
                return None
            delay = max(delay, exc.retry_after)
        left = remaining_time()
        if left is not None and delay >= left:
            return None
        return delay

    async def run(self, attempt: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call ``attempt(*args)`` until it succeeds, fails for good, or attempts run out."""
        n = 1
        while True:
            try:
                return await attempt(*args)
            except Exception as exc:
                if n >= self.max_attempts or not self.retry_if(exc):
                    if n > 1:
                        note("attempts", n)
                    raise
                delay = self.delay_for(exc, n)
                note_append("retries", {"attempt": n, "error": _describe(exc), "delay_s": delay})
                if delay is None:
                    note("attempts", n)
                    raise
            await self.clock.sleep(delay)
            n += 1

    def wrap(self, voice: Voice) -> Voice:
        return PolicyVoice(voice, Retrying(self))

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        return await self.run(call)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Retrying:
    """``RetryPolicy`` as voice middleware."""

    policy: RetryPolicy

    def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> ResponseCoroutine:
        return self.policy.run(call_next, request)  # its coroutine: no extra frame
