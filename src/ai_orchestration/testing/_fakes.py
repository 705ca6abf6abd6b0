"""Fake voices for tests: scripted (FIFO), function-backed and deterministic seeded."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse

__all__ = ["FunctionVoice", "ScriptedVoice", "SeededVoice"]

ScriptItem = str | VoiceResponse | BaseException


def _as_response(item: str | VoiceResponse, model: str) -> VoiceResponse:
    if isinstance(item, VoiceResponse):
        return item
    return VoiceResponse(text=item, model=model, finish_reason="stop", usage=Usage(calls=1))


class ScriptedVoice:
    """Answers from a FIFO script; records every request; ``assert_complete()`` checks the
    script was used up. Script items are texts, responses, or exceptions to raise.

    >>> v = ScriptedVoice("a", ["yes", "no"])
    """

    def __init__(self, name: str, script: Iterable[ScriptItem], *, delay: float = 0.0) -> None:
        self._name = name
        self._script: deque[ScriptItem] = deque(script)
        self.delay = delay
        self.requests: list[VoiceRequest] = []
        self.overcalls = 0  # calls after the script ran out (the engine maps them to failures)

    @property
    def name(self) -> str:
        return self._name

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        self.requests.append(request)
        if not self._script:
            self.overcalls += 1
            raise AssertionError(f"ScriptedVoice {self._name!r}: script exhausted")
        item = self._script.popleft()
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(item, BaseException):
            raise item
        return _as_response(item, f"scripted:{self._name}")

    def assert_complete(self) -> None:
        """Every scripted answer was used, and the voice was not called once more."""
        if self._script:
            raise AssertionError(
                f"ScriptedVoice {self._name!r}: {len(self._script)} scripted answer(s) unused"
            )
        if self.overcalls:
            raise AssertionError(
                f"ScriptedVoice {self._name!r}: called {self.overcalls} time(s) after its script"
                " ran out"
            )


Responder = Callable[[VoiceRequest], "str | VoiceResponse | Awaitable[str | VoiceResponse]"]


class FunctionVoice:
    """A voice backed by a plain or async function of the request."""

    def __init__(self, name: str, fn: Responder, *, delay: float = 0.0) -> None:
        self._name = name
        self._fn = fn
        self.delay = delay
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        out: Any = self._fn(request)
        if inspect.isawaitable(out):
            out = await out
        return _as_response(out, f"function:{self._name}")


class SeededVoice:
    """Deterministic pseudo-random voice: the same (seed, prompt) always gives the same answer.

    With ``choices`` (on the voice or the request) it answers the ``truth`` callback's value
    with probability ``accuracy`` and a wrong choice otherwise — a simulated annotator.
    """

    def __init__(
        self,
        name: str,
        *,
        seed: int = 0,
        accuracy: float = 1.0,
        choices: Sequence[str] = (),
        truth: Callable[[VoiceRequest], str] | None = None,
        confidence: float | None = None,
    ) -> None:
        self._name = name
        self.seed = seed
        self.accuracy = accuracy
        self.choices = tuple(choices)
        self.truth = truth
        self.confidence = confidence

    @property
    def name(self) -> str:
        return self._name

    def _unit(self, prompt: str, salt: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{salt}|{prompt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        prompt = request.prompt
        choices = request.choices or self.choices
        if not choices:
            text = f"{self._name}-{int(self._unit(prompt, 'text') * 1e6):06d}"
        else:
            right = self.truth(request) if self.truth else choices[0]
            wrong = [c for c in choices if c != right] or [right]
            if self._unit(prompt, "correct") < self.accuracy:
                text = right
            else:
                text = wrong[int(self._unit(prompt, "wrong") * len(wrong))]
        return VoiceResponse(
            text=text,
            model=f"seeded:{self._name}",
            finish_reason="stop",
            confidence=self.confidence,
            usage=Usage(input_tokens=len(prompt.split()), output_tokens=1, calls=1),
        )
