"""Fallback chains: the primary voice first, then each fallback in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ai_orchestration.errors import VoiceError
from ai_orchestration.policies._wrap import PolicyVoice, VoiceCall, note
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse

__all__ = ["FallbackPolicy", "FallbackResponse", "FallbackVoice", "FallingBack"]


@dataclass(frozen=True, slots=True)
class FallbackResponse(VoiceResponse):
    """A response that says which voice of a fallback chain answered and what failed first."""

    answered_by: str = ""
    fallback_errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """On a ``VoiceError`` (of the ``on`` classes), try ``fallbacks`` in order.

    The current span records ``answered_by`` and ``fallback_errors``; the response is a
    ``FallbackResponse`` carrying the same. Deadlines, budgets and cancellation pass through.
    """

    fallbacks: Sequence[Voice]
    on: tuple[type[VoiceError], ...] = (VoiceError,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))

    def wrap(self, voice: Voice) -> Voice:
        return FallbackVoice(voice, self.fallbacks, on=self.on)


class FallbackVoice(PolicyVoice):
    """``inner`` then each of ``fallbacks``; keeps the primary's name (a ``PolicyVoice``
    with a ``FallingBack`` middleware)."""

    __slots__ = ()

    def __init__(
        self,
        inner: Voice,
        fallbacks: Sequence[Voice],
        *,
        on: tuple[type[VoiceError], ...] = (VoiceError,),
        name: str | None = None,
    ) -> None:
        super().__init__(inner, FallingBack(inner.name, tuple(fallbacks), on), name=name)


@dataclass(frozen=True, slots=True)
class FallingBack:
    """Voice middleware: on one of the ``on`` errors, ask each of ``fallbacks`` in order."""

    primary: str
    fallbacks: tuple[Voice, ...]
    on: tuple[type[VoiceError], ...]

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        try:
            return await call_next(request)
        except self.on as exc:
            errors = [f"{self.primary}: {type(exc).__name__}: {exc}"]
            last: VoiceError = exc
        for voice in self.fallbacks:
            try:
                response = await voice.respond(request)
            except self.on as exc:
                errors.append(f"{voice.name}: {type(exc).__name__}: {exc}")
                last = exc
                continue
            note("answered_by", voice.name)
            note("fallback_errors", errors)
            return _answered(response, voice.name, tuple(errors))
        note("fallback_errors", errors)
        raise last


_RESPONSE_FIELDS = tuple(f.name for f in dataclasses.fields(VoiceResponse))


def _answered(response: VoiceResponse, voice: str, errors: tuple[str, ...]) -> FallbackResponse:
    kept = {name: getattr(response, name) for name in _RESPONSE_FIELDS}
    return FallbackResponse(**kept, answered_by=voice, fallback_errors=errors)
