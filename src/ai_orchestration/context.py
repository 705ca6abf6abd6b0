"""Messages and the immutable, structurally shared ``Context`` handed between agents.

A ``Context`` is a view of an append-only, chunked message history: extending the latest
context appends to its chunk in place, extending an older one (a branch) starts a new chunk that
points back at the shared prefix. A turn or a handoff costs a reference and the new messages,
never a copy of the history. Filters are pure functions ``Context -> Context``.

>>> ctx = Context().extend(Message("user", "hi"))
>>> ctx2 = ctx.extend(Message("assistant", "hello"))
>>> [m.content for m in ctx2.messages], len(ctx)
(['hi', 'hello'], 1)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, overload

__all__ = [
    "Context",
    "ContextFilter",
    "Message",
    "MessageHistory",
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


class _Chunk:
    """An append-only run of messages continuing ``base`` after its first ``offset`` messages.

    A linear conversation appends to one chunk in place; a context extended from the middle
    of a chunk (a branch) starts a new chunk pointing back at it. Slots ``[0, len(items))``
    never change once written, so every context sharing a chunk sees a stable prefix.
    """

    __slots__ = ("base", "items", "materialised", "offset")

    def __init__(self, base: _Chunk | None, offset: int, items: list[Message]) -> None:
        self.base, self.offset, self.items = base, offset, items
        self.materialised: tuple[int, tuple[Message, ...]] = (0, ())

    def segments(self, length: int) -> list[tuple[list[Message], int]]:
        """``(items, stop)`` pairs, oldest first, covering the first ``length`` messages."""
        out: list[tuple[list[Message], int]] = []
        chunk: _Chunk | None = self
        while chunk is not None and length > 0:
            out.append((chunk.items, length - chunk.offset))
            length, chunk = chunk.offset, chunk.base
        out.reverse()
        return out


# Past this size a chunk is closed: growing a big list in place would reallocate it (a copy).
_CHUNK_MAX = 256


def _append(chunk: _Chunk, n: int, delta: tuple[Message, ...]) -> _Chunk:
    """The chunk holding ``delta`` after the first ``n`` messages of ``chunk``'s history.

    A context at the tip appends in place. Two contexts racing to append at the same tip (from
    threads) both extend the list, and only the one whose messages landed at slot ``n`` keeps
    it: the other sees someone else's messages there and starts a new chunk. Slots past a
    context's length are never read through it, so a lost race leaves only unused slots.
    """
    at = n - chunk.offset
    items = chunk.items
    if len(items) == at and at < _CHUNK_MAX:
        items.extend(delta)  # one C call: atomic under the GIL
        if all(map(operator.is_, items[at : at + len(delta)], delta)):
            return chunk
    return _Chunk(chunk, n, list(delta))


class MessageHistory(Sequence[Message]):
    """A read-only view of a context's messages; taking it costs O(1), not O(history)."""

    __slots__ = ("_chunk", "_len", "last_user")

    def __init__(self, chunk: _Chunk, length: int, last_user: Message | None) -> None:
        self._chunk, self._len, self.last_user = chunk, length, last_user

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Message]:
        for items, stop in self._chunk.segments(self._len):
            yield from items[:stop]

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...
    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            return self._slice(index)
        i = index + self._len if index < 0 else index
        if not 0 <= i < self._len:
            raise IndexError("message index out of range")
        chunk = self._chunk
        while i < chunk.offset:
            chunk = chunk.base  # type: ignore[assignment]  # offset > 0 implies a base
        return chunk.items[i - chunk.offset]

    def _slice(self, index: slice) -> tuple[Message, ...]:
        start, stop, step = index.indices(self._len)
        if step != 1:
            return tuple(self)[index]
        return self.range(start, stop)

    def range(self, start: int, stop: int) -> tuple[Message, ...]:
        """Messages ``[start, stop)`` (``0 <= start``, ``stop <= len``), copying only those."""
        offset = self._chunk.offset
        if start >= offset:  # all in the newest chunk: one C-level copy
            return tuple(self._chunk.items[start - offset : max(stop - offset, 0)])
        out: list[Message] = []
        begin = 0  # copy only the segments that overlap [start, stop)
        for items, seg_stop in self._chunk.segments(self._len):
            end = begin + seg_stop
            if end > start and begin < stop:
                out.extend(items[max(start - begin, 0) : min(stop, end) - begin])
            begin = end
        return tuple(out)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageHistory | tuple | list):
            return len(other) == self._len and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageHistory({self._len} messages)"


class Context:
    """Immutable conversation state: messages, artifacts and metadata.

    ``extend`` and ``with_artifacts`` return new contexts sharing everything unchanged with
    their parent; appending costs O(new messages) whatever the history's length, and so does
    ``history`` (a view) and ``last_user``. ``messages`` materialises a tuple once and caches it.
    Contexts pickle (as their flat messages, artifacts and metadata).
    """

    __slots__ = ("_chunk", "_last_user", "_len", "artifacts", "metadata")

    def __init__(
        self,
        messages: Iterable[Message] = (),
        *,
        artifacts: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        items = list(messages)
        self._chunk = _Chunk(None, 0, items)
        self._len = len(items)
        self._last_user = next((m for m in reversed(items) if m.role == "user"), None)
        self.artifacts: Mapping[str, Any] = (
            MappingProxyType(dict(artifacts)) if artifacts else _EMPTY
        )
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata)) if metadata else _EMPTY

    def _child(
        self,
        delta: tuple[Message, ...],
        artifacts: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ) -> Context:
        ctx = Context.__new__(Context)
        chunk, n, last_user = self._chunk, self._len, self._last_user
        if delta:
            chunk = _append(chunk, n, delta)
            for m in reversed(delta):
                if m.role == "user":
                    last_user = m
                    break
        ctx._chunk, ctx._len, ctx._last_user = chunk, n + len(delta), last_user
        ctx.artifacts, ctx.metadata = artifacts, metadata
        return ctx

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Context(messages={self._len}, artifacts={sorted(self.artifacts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.messages, dict(self.artifacts), dict(self.metadata)))

    @property
    def history(self) -> MessageHistory:
        """The messages as an O(1) read-only view (what a voice request carries)."""
        return MessageHistory(self._chunk, self._len, self._last_user)

    @property
    def messages(self) -> tuple[Message, ...]:
        n, cached = self._chunk.materialised
        if n != self._len:
            cached = tuple(self.history)
            self._chunk.materialised = (self._len, cached)
        return cached

    @property
    def last(self) -> Message | None:
        at = self._len - self._chunk.offset - 1
        if at >= 0:  # in the newest chunk: no walk
            return self._chunk.items[at]
        return self.history[-1] if self._len else None

    @property
    def last_user(self) -> Message | None:
        """The most recent user message, found in O(1)."""
        return self._last_user

    def extend(self, *messages: Message) -> Context:
        """A new context with ``messages`` appended; shares this context's history."""
        return self._child(messages, self.artifacts, self.metadata)

    def since(self, ancestor: Context) -> tuple[Message, ...]:
        """The messages added after ``ancestor``'s (a prefix of this context's history)."""
        return self.history[len(ancestor) :]

    def with_artifacts(self, **artifacts: Any) -> Context:
        return self._child((), MappingProxyType({**self.artifacts, **artifacts}), self.metadata)

    def with_metadata(self, **metadata: Any) -> Context:
        return self._child((), self.artifacts, MappingProxyType({**self.metadata, **metadata}))

    def replace_messages(self, messages: Iterable[Message]) -> Context:
        """A context with a new message history (used by filters), same artifacts/metadata."""
        ctx = Context(messages)
        ctx.artifacts, ctx.metadata = self.artifacts, self.metadata
        return ctx

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [m.to_dict() for m in self.history],
            "artifacts": dict(self.artifacts),
            "metadata": dict(self.metadata),
        }


def _rebuild(
    messages: tuple[Message, ...], artifacts: dict[str, Any], metadata: dict[str, Any]
) -> Context:
    return Context(messages, artifacts=artifacts, metadata=metadata)


ContextFilter = Callable[[Context], Context]


@dataclass(frozen=True, slots=True)
class keep_last:
    """Keep the last ``n`` messages (system messages are always kept)."""

    n: int
    keep_system: bool = True

    def __call__(self, ctx: Context) -> Context:
        if len(ctx) <= self.n:
            return ctx
        msgs, cut = ctx.history, len(ctx) - self.n
        tail = msgs.range(cut, len(ctx))
        if not self.keep_system:
            return ctx.replace_messages(tail)
        head = [m for m in msgs.range(0, cut) if m.role == "system"]
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
