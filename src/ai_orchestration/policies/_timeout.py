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
from typing import Any, ClassVar

from ai_orchestration._policy import StepCall
from ai_orchestration._runtime import current_deadline, deadline_at, remaining_time
from ai_orchestration.errors import DeadlineExceededError, VoiceTimeoutError
from ai_orchestration.policies._alarms import TaskTimer, alarms
from ai_orchestration.policies._wrap import PolicyVoice, VoiceCall, note
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse

__all__ = [
    "DeadlinePolicy",
    "TimeLimit",
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
class _SecondsPolicy:
    """What the timeout and the deadline share: ``seconds`` (> 0) and their voice form."""

    seconds: float
    overall: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            what = "deadline" if self.overall else "timeout"
            raise ValueError(f"{what} must be > 0, got {self.seconds}")

    def wrap(self, voice: Voice) -> Voice:
        return PolicyVoice(voice, TimeLimit(self.seconds, voice.name, overall=self.overall))


@dataclass(frozen=True, slots=True)
class TimeoutPolicy(_SecondsPolicy):
    """Limit each attempt to ``seconds``: a voice raises ``VoiceTimeoutError`` (retryable), a
    step raises ``DeadlineExceededError``."""

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


@dataclass(frozen=True, slots=True)
class DeadlinePolicy(_SecondsPolicy):
    """An overall deadline around everything inside it (retries, fallbacks, nested steps)."""

    overall: ClassVar[bool] = True

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        async with deadline_scope(self.seconds, scope=step):
            return await call()


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """Voice middleware cancelling the call after ``seconds``: per attempt
    (``VoiceTimeoutError``, retryable) or, ``overall``, as a deadline every call nested under
    it sees (``DeadlineExceededError``). Runs on the shared alarms, not ``asyncio.timeout``."""

    seconds: float
    voice: str
    overall: bool

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        reg = alarms()
        end = reg.loop.time() + self.seconds
        scope = deadline_at(end) if self.overall else None  # entered by hand: no-op is free
        if scope is not None:
            end = scope.__enter__()
        timer = TaskTimer(reg, end)
        try:
            response = await call_next(request)
        except BaseException as exc:
            if timer.disarm() and isinstance(exc, asyncio.CancelledError):
                raise self._expired() from None
            raise
        finally:
            if scope is not None:
                scope.__exit__(None, None, None)
        timer.disarm()
        return response

    def _expired(self) -> Exception:
        if self.overall:
            return _exceeded(f"voice {self.voice!r}", self.seconds)
        return VoiceTimeoutError(f"no answer within {self.seconds:g}s", voice=self.voice)
