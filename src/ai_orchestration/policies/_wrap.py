"""The one voice-policy wrapper: a voice with a middleware around its ``respond``.

A voice policy is middleware: an object with ``async __call__(request, call_next)`` that does
its work around ``await call_next(request)`` (``call_next`` is the next policy, or the voice).
``PolicyVoice`` is the only wrapper class; ``with_policies`` builds the onion.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

from ai_orchestration._runtime import current_run, estimate_usage
from ai_orchestration.voices import (
    Usage,
    Voice,
    VoiceIdentity,
    VoiceRequest,
    VoiceResponse,
    identity_of,
)

__all__ = [
    "ContextLimitVoice",
    "PolicyVoice",
    "ResponseCoroutine",
    "VoiceCall",
    "VoiceMiddleware",
    "VoicePolicy",
    "note",
    "note_append",
    "with_policies",
]

VoiceCall = Callable[[VoiceRequest], Awaitable[VoiceResponse]]
ResponseCoroutine = Coroutine[Any, Any, VoiceResponse]


class VoiceMiddleware(Protocol):
    """A policy around one call, usually ``async def __call__(request, call_next)``: returns
    (or raises) what ``call_next(request)`` gave, or something it made of it."""

    def __call__(self, request: VoiceRequest, call_next: VoiceCall, /) -> ResponseCoroutine: ...


class VoicePolicy(Protocol):
    """A policy that knows how to wrap a voice (binding per-voice state such as its circuit);
    the wrapped voice is still a ``Voice``."""

    def wrap(self, voice: Voice) -> Voice: ...


class PolicyVoice:
    """``inner`` with ``middleware`` around each call; keeps its name unless given one.

    Without a middleware it just forwards (a subclass may override ``respond``)."""

    __slots__ = ("_inner", "_name", "_next", "middleware")

    def __init__(
        self,
        inner: Voice,
        middleware: VoiceMiddleware | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self._inner = inner
        self._next: VoiceCall = inner.respond  # bound once, not on every call
        self.middleware = middleware
        self._name = name if name is not None else inner.name

    @property
    def inner(self) -> Voice:
        """The wrapped voice (fixed at construction)."""
        return self._inner

    @property
    def name(self) -> str:
        return self._name

    @property
    def identity(self) -> VoiceIdentity:
        """What ``inner`` calls (policies key circuits and limits by it)."""
        return identity_of(self.inner)

    @property
    def picks_among_answers(self) -> bool:
        """Whether ``inner`` only picks among given answers (consensus asks it last)."""
        return getattr(self.inner, "picks_among_answers", False) is True

    def respond(self, request: VoiceRequest) -> ResponseCoroutine:
        # Hands back the middleware's coroutine instead of awaiting it in one of its own:
        # one frame less per layer on every call (a stack has seven or eight layers).
        middleware = self.middleware
        if middleware is None:
            return self._inner.respond(request)
        return middleware(request, self._next)

    def estimate_usage(self, request: VoiceRequest) -> Usage:
        """What ``inner`` may use for one call (what a budget reserves before the call)."""
        return estimate_usage(self.inner, request)

    @property
    def context_tokens(self) -> int | None:
        """The input tokens ``inner`` can take, when it declares them."""
        limit = getattr(self.inner, "context_tokens", None)
        return limit if isinstance(limit, int) else None

    def __repr__(self) -> str:
        shown = "" if self.middleware is None else f" with {type(self.middleware).__name__}"
        return f"<{type(self).__name__} {self._name!r}{shown} around {self.inner!r}>"


class ContextLimitVoice(PolicyVoice):
    """``inner`` declared to take at most ``tokens`` input tokens (config ``context_tokens``):
    over it, the voice abstains in a consensus and a voice step is an ``InputError``."""

    __slots__ = ("tokens",)

    def __init__(self, inner: Voice, tokens: int) -> None:
        super().__init__(inner)
        self.tokens = tokens

    @property
    def context_tokens(self) -> int:
        return self.tokens


def with_policies(voice: Voice, *policies: VoicePolicy | VoiceMiddleware) -> Voice:
    """Wrap ``voice`` in ``policies``, the first outermost. A policy is a ``VoicePolicy``
    (has ``wrap``) or plain middleware (``async __call__(request, call_next)``).

    >>> from ai_orchestration.testing import ScriptedVoice
    >>> from ai_orchestration.policies import RetryPolicy, TimeoutPolicy
    >>> v = with_policies(ScriptedVoice("a", ["ok"]), RetryPolicy(), TimeoutPolicy(5.0))
    >>> v.name
    'a'
    """
    for policy in reversed(policies):
        wrap = getattr(policy, "wrap", None)
        mw = cast(VoiceMiddleware, policy)  # no ``wrap``: plain middleware
        voice = PolicyVoice(voice, mw) if wrap is None else wrap(voice)
    return voice


def note(key: str, value: Any) -> None:
    """Set an attribute on the current span (a no-op outside a run)."""
    scope = current_run()
    if scope is not None:
        scope[1].set(key, value)


def note_append(key: str, item: Any) -> None:
    """Append ``item`` to a list attribute of the current span (a no-op outside a run)."""
    scope = current_run()
    if scope is None:
        return
    span = scope[1]
    attrs = span.attributes
    existing = attrs.get(key) if attrs is not None else None
    if isinstance(existing, list):
        existing.append(item)
    else:
        span.set(key, [item])
