"""Messages and the immutable, structurally shared ``Context`` handed between agents.

A ``Context`` is a chain of segments: extending it creates a new node that points at its parent
and holds only the delta, so a handoff costs a reference and the new messages, never a copy of
the history. Filters are pure functions ``Context -> Context``.

>>> ctx = Context().extend(Message("user", "hi"))
>>> ctx2 = ctx.extend(Message("assistant", "hello"))
>>> [m.content for m in ctx2.messages], len(ctx)
(['hi', 'hello'], 1)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "Context",
    "ContextFilter",
    "Message",
    "ToolCall",
    "drop_tool_messages",
    "keep_last",
    "redact",
]

Role = Literal["system", "user", "assistant", "tool"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool (or to hand off, via ``transfer_to_<agent>``)."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``name`` is the speaking agent or voice, when known."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class Context:
    """Immutable conversation state: messages, artifacts and metadata.

    ``extend`` and ``with_artifacts`` return new contexts sharing everything unchanged with
    their parent. ``messages`` materialises the full tuple once and caches it.
    """

    __slots__ = ("_cache", "_delta", "_len", "_parent", "artifacts", "metadata")

    def __init__(
        self,
        messages: Iterable[Message] = (),
        *,
        artifacts: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        delta = tuple(messages)
        self._parent: Context | None = None
        self._delta = delta
        self._len = len(delta)
        self._cache: tuple[Message, ...] | None = delta
        self.artifacts: Mapping[str, Any] = (
            MappingProxyType(dict(artifacts)) if artifacts else _EMPTY
        )
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata)) if metadata else _EMPTY

    @classmethod
    def _child(
        cls,
        parent: Context,
        delta: tuple[Message, ...],
        artifacts: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> Context:
        ctx = cls.__new__(cls)
        if not delta:  # share the parent's node: nothing new to record
            ctx._parent, ctx._delta, ctx._cache = parent._parent, parent._delta, parent._cache
            ctx._len = parent._len
        else:
            ctx._parent, ctx._delta, ctx._cache = parent, delta, None
            ctx._len = parent._len + len(delta)
        ctx.artifacts, ctx.metadata = artifacts, metadata
        return ctx

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Context(messages={self._len}, artifacts={sorted(self.artifacts)})"

    @property
    def messages(self) -> tuple[Message, ...]:
        if self._cache is None:
            segments: list[tuple[Message, ...]] = []
            node: Context | None = self
            while node is not None and node._cache is None:
                segments.append(node._delta)
                node = node._parent
            out: list[Message] = list(node._cache) if node is not None and node._cache else []
            for seg in reversed(segments):
                out.extend(seg)
            self._cache = tuple(out)
        return self._cache

    @property
    def last(self) -> Message | None:
        if self._delta:
            return self._delta[-1]
        return self.messages[-1] if self._len else None

    def extend(self, *messages: Message) -> Context:
        """A new context with ``messages`` appended; shares this context's history."""
        return Context._child(self, messages, self.artifacts, self.metadata)

    def with_artifacts(self, **artifacts: Any) -> Context:
        return Context._child(
            self, (), MappingProxyType({**self.artifacts, **artifacts}), self.metadata
        )

    def with_metadata(self, **metadata: Any) -> Context:
        return Context._child(
            self, (), self.artifacts, MappingProxyType({**self.metadata, **metadata})
        )

    def replace_messages(self, messages: Iterable[Message]) -> Context:
        """A context with a new message history (used by filters), same artifacts/metadata."""
        ctx = Context(messages)
        ctx.artifacts, ctx.metadata = self.artifacts, self.metadata
        return ctx

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [m.to_dict() for m in self.messages],
            "artifacts": dict(self.artifacts),
            "metadata": dict(self.metadata),
        }


ContextFilter = Callable[[Context], Context]


@dataclass(frozen=True, slots=True)
class keep_last:
    """Keep the last ``n`` messages (system messages are always kept)."""

    n: int
    keep_system: bool = True

    def __call__(self, ctx: Context) -> Context:
        msgs = ctx.messages
        if len(msgs) <= self.n:
            return ctx
        tail = msgs[-self.n :] if self.n else ()
        if not self.keep_system:
            return ctx.replace_messages(tail)
        head = [m for m in msgs[: -self.n or None] if m.role == "system"]
        return ctx.replace_messages([*head, *tail])


def drop_tool_messages(ctx: Context) -> Context:
    """Drop tool results and tool-call-only assistant messages."""
    kept = [m for m in ctx.messages if m.role != "tool" and not (m.tool_calls and not m.content)]
    return ctx if len(kept) == len(ctx) else ctx.replace_messages(kept)


@dataclass(frozen=True)
class redact:
    """Replace every match of the given regex patterns in message contents."""

    patterns: tuple[str, ...]
    replacement: str = "[REDACTED]"
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __init__(self, *patterns: str, replacement: str = "[REDACTED]") -> None:
        object.__setattr__(self, "patterns", patterns)
        object.__setattr__(self, "replacement", replacement)
        object.__setattr__(self, "_compiled", tuple(re.compile(p) for p in patterns))

    def __call__(self, ctx: Context) -> Context:
        changed = False
        out: list[Message] = []
        for m in ctx.messages:
            text = m.content
            for pat in self._compiled:
                text = pat.sub(self.replacement, text)
            if text != m.content:
                changed = True
                m = Message(m.role, text, m.name, m.tool_calls, m.tool_call_id)
            out.append(m)
        return ctx.replace_messages(out) if changed else ctx
