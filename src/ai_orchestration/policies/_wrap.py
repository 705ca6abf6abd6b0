"""Voice wrappers: the base every voice policy builds on, ``with_policies`` and span notes."""

from __future__ import annotations

from typing import Any, Protocol

from ai_orchestration._runtime import current_run, estimate_usage
from ai_orchestration.voices import Usage, Voice, VoiceRequest, VoiceResponse

__all__ = [
    "ContextLimitVoice",
    "PolicyVoice",
    "VoicePolicy",
    "note",
    "note_append",
    "with_policies",
]


class VoicePolicy(Protocol):
    """A policy that can wrap a voice; the wrapped voice is still a ``Voice``."""

    def wrap(self, voice: Voice) -> Voice: ...


class PolicyVoice:
    """Base of policy wrappers: forwards to ``inner`` and keeps its name unless given one."""

    __slots__ = ("_name", "inner")

    def __init__(self, inner: Voice, *, name: str | None = None) -> None:
        self.inner = inner
        self._name = name if name is not None else inner.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def picks_among_answers(self) -> bool:
        """Whether ``inner`` only picks among given answers (consensus asks it last)."""
        return getattr(self.inner, "picks_among_answers", False) is True

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        return await self.inner.respond(request)

    def estimate_usage(self, request: VoiceRequest) -> Usage:
        """What ``inner`` may use for one call (what a budget reserves before the call)."""
        return estimate_usage(self.inner, request)

    @property
    def context_tokens(self) -> int | None:
        """The input tokens ``inner`` can take, when it declares them."""
        limit = getattr(self.inner, "context_tokens", None)
        return limit if isinstance(limit, int) else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} around {self.inner!r}>"


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


def with_policies(voice: Voice, *policies: VoicePolicy) -> Voice:
    """Wrap ``voice`` in ``policies``; the first policy is the outermost.

    >>> from ai_orchestration.testing import ScriptedVoice
    >>> from ai_orchestration.policies import RetryPolicy, TimeoutPolicy
    >>> v = with_policies(ScriptedVoice("a", ["ok"]), RetryPolicy(), TimeoutPolicy(5.0))
    >>> v.name
    'a'
    """
    for policy in reversed(policies):
        voice = policy.wrap(voice)
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
