"""Timeouts: per attempt (``TimeoutPolicy``) and an overall deadline (``DeadlinePolicy``).

The deadline lives in a contextvar, so everything nested under it — retries, fallbacks,
nested steps and the tasks they start — sees the same end time through ``remaining_time()``
and is cancelled when it passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ai_orchestration._policy import StepCall
from ai_orchestration._runtime import current_deadline, deadline_at, remaining_time
from ai_orchestration.errors import DeadlineExceededError, VoiceTimeoutError
from ai_orchestration.policies._alarms import TaskTimer, alarms
from ai_orchestration.policies._wrap import PolicyVoice, note
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse

__all__ = [
    "DeadlinePolicy",
    "TimeoutPolicy",
    "current_deadline",
    "deadline_scope",
    "remaining_time",
]


@asynccontextmanager
async def deadline_scope(seconds: float, *, scope: str = "run") -> AsyncIterator[None]:
    """Run the body under a deadline of ``seconds`` (never later than an enclosing one);
    raises ``DeadlineExceededError(scope=...)`` when it passes."""
    with deadline_at(asyncio.get_running_loop().time() + seconds) as end:
        try:
            async with asyncio.timeout_at(end) as cm:
                yield
        except TimeoutError as exc:
            if not cm.expired():
                raise
            raise _exceeded(scope, seconds) from exc


def _exceeded(scope: str, seconds: float) -> DeadlineExceededError:
    """The error of a passed deadline, noted on the current span."""
    note("deadline_exceeded", scope)
    return DeadlineExceededError(
        f"{scope}: deadline of {seconds:g}s exceeded", scope=scope, timeout=seconds
    )


@dataclass(frozen=True, slots=True)
class TimeoutPolicy:
    """Limit each attempt to ``seconds``: a voice raises ``VoiceTimeoutError`` (retryable), a
    step raises ``DeadlineExceededError``."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"timeout must be > 0, got {self.seconds}")

    def wrap(self, voice: Voice) -> Voice:
        return TimeoutVoice(voice, self.seconds)

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        try:
            async with asyncio.timeout(self.seconds) as cm:
                return await call()
        except TimeoutError as exc:
            if not cm.expired():
                raise
            raise DeadlineExceededError(
                f"step {step!r} timed out after {self.seconds:g}s", scope=step, timeout=self.seconds
            ) from exc


class TimeoutVoice(PolicyVoice):
    __slots__ = ("seconds",)

    def __init__(self, inner: Voice, seconds: float) -> None:
        super().__init__(inner)
        self.seconds = seconds

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        reg = alarms()
        timer = TaskTimer(reg, reg.loop.time() + self.seconds)
        try:
            response = await self.inner.respond(request)
        except BaseException as exc:
            if timer.disarm() and isinstance(exc, asyncio.CancelledError):
                raise VoiceTimeoutError(
                    f"no answer within {self.seconds:g}s", voice=self.name
                ) from None
            raise
        timer.disarm()
        return response


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """An overall deadline around everything inside it (retries, fallbacks, nested steps)."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"deadline must be > 0, got {self.seconds}")

    def wrap(self, voice: Voice) -> Voice:
        return DeadlineVoice(voice, self.seconds)

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        async with deadline_scope(self.seconds, scope=step):
            return await call()


class DeadlineVoice(PolicyVoice):
    __slots__ = ("seconds",)

    def __init__(self, inner: Voice, seconds: float) -> None:
        super().__init__(inner)
        self.seconds = seconds

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        reg = alarms()
        with deadline_at(reg.loop.time() + self.seconds) as end:
            timer = TaskTimer(reg, end)
            try:
                response = await self.inner.respond(request)
            except BaseException as exc:
                if timer.disarm() and isinstance(exc, asyncio.CancelledError):
                    raise _exceeded(f"voice {self.name!r}", self.seconds) from None
                raise
        timer.disarm()
        return response
