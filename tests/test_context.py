"""Context: immutability, structural sharing, and handoff filters as pure functions."""

from __future__ import annotations

import dataclasses
import pickle
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_orchestration.context import (
    Context,
    Message,
    ToolCall,
    drop_tool_messages,
    keep_last,
    redact,
)

ROLES = ("system", "user", "assistant", "tool")


def msgs(*specs: str) -> list[Message]:
    """``"user:hi"`` → Message("user", "hi")."""
    out = []
    for spec in specs:
        role, _, content = spec.partition(":")
        out.append(Message(role, content))  # type: ignore[arg-type]
    return out


def texts(ctx: Context) -> list[str]:
    return [f"{m.role}:{m.content}" for m in ctx.messages]


# --- immutability and sharing -------------------------------------------------------------------


def test_extend_returns_a_new_context_and_leaves_the_old_one_alone() -> None:
    base = Context(msgs("user:hi"))
    child = base.extend(*msgs("assistant:hello", "user:how are you?"))
    assert texts(base) == ["user:hi"]
    assert texts(child) == ["user:hi", "assistant:hello", "user:how are you?"]
    assert (len(base), len(child)) == (1, 3)
    assert child.messages[0] is base.messages[0]


def test_siblings_share_their_parent_and_do_not_see_each_other() -> None:
    base = Context(msgs("user:q"))
    left = base.extend(*msgs("assistant:left"))
    right = base.extend(*msgs("assistant:right"))
    assert texts(left) == ["user:q", "assistant:left"]
    assert texts(right) == ["user:q", "assistant:right"]
    assert left.messages[0] is right.messages[0]


def test_messages_are_materialised_once() -> None:
    ctx = Context(msgs("user:a")).extend(*msgs("assistant:b")).extend(*msgs("user:c"))
    first = ctx.messages
    assert ctx.messages is first
    assert isinstance(first, tuple)


def test_messages_and_mappings_are_read_only() -> None:
    ctx = Context(msgs("user:a"), artifacts={"doc": 1}, metadata={"lang": "en"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.messages[0].content = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.artifacts["doc"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.metadata["lang"] = "fr"  # type: ignore[index]


def test_input_mappings_are_copied_not_aliased() -> None:
    arts = {"doc": 1}
    ctx = Context(artifacts=arts)
    arts["doc"] = 2
    assert dict(ctx.artifacts) == {"doc": 1}


def test_artifacts_and_metadata_share_the_message_history() -> None:
    ctx = Context(msgs("user:a", "assistant:b"))
    with_art = ctx.with_artifacts(plan="x")
    with_meta = with_art.with_metadata(user="u1")
    assert with_art.messages is ctx.messages
    assert with_meta.messages is ctx.messages
    assert (dict(ctx.artifacts), dict(with_art.artifacts)) == ({}, {"plan": "x"})
    assert dict(with_meta.metadata) == {"user": "u1"}
    assert dict(with_meta.artifacts) == {"plan": "x"}
    extended = with_meta.extend(*msgs("user:c"))
    assert (dict(extended.artifacts), dict(extended.metadata)) == ({"plan": "x"}, {"user": "u1"})


def test_last_len_repr_and_to_dict() -> None:
    empty = Context()
    assert (empty.last, len(empty), empty.messages) == (None, 0, ())
    call = ToolCall("t1", "clock", '{"tz": "UTC"}')
    ctx = Context(msgs("user:hi"), artifacts={"b": 1, "a": 2}).extend(
        Message("assistant", "", "bot", (call,)), Message("tool", "12:00", tool_call_id="t1")
    )
    assert ctx.last == Message("tool", "12:00", tool_call_id="t1")
    assert repr(ctx) == "Context(messages=3, artifacts=['a', 'b'])"
    assert ctx.to_dict() == {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "",
                "name": "bot",
                "tool_calls": [{"id": "t1", "name": "clock", "arguments": '{"tz": "UTC"}'}],
            },
            {"role": "tool", "content": "12:00", "tool_call_id": "t1"},
        ],
        "artifacts": {"b": 1, "a": 2},
        "metadata": {},
    }


def test_replace_messages_keeps_artifacts_and_metadata() -> None:
    ctx = Context(msgs("user:a"), artifacts={"k": 1}, metadata={"m": 2})
    new = ctx.replace_messages(msgs("system:summary"))
    assert texts(new) == ["system:summary"]
    assert (dict(new.artifacts), dict(new.metadata)) == ({"k": 1}, {"m": 2})
    assert texts(ctx) == ["user:a"]


# --- filters -------------------------------------------------------------------------------------


def test_keep_last_keeps_system_messages_by_default() -> None:
    ctx = Context(msgs("system:rules", "user:1", "assistant:2", "system:note", "user:3"))
    assert texts(keep_last(2)(ctx)) == ["system:rules", "system:note", "user:3"]
    assert texts(keep_last(2, keep_system=False)(ctx)) == ["system:note", "user:3"]
    assert texts(keep_last(0, keep_system=False)(ctx)) == []
    assert texts(keep_last(0)(ctx)) == ["system:rules", "system:note"]
    assert texts(ctx) == ["system:rules", "user:1", "assistant:2", "system:note", "user:3"]


def test_keep_last_returns_the_same_context_when_nothing_to_drop() -> None:
    ctx = Context(msgs("user:1", "user:2"), artifacts={"a": 1})
    assert keep_last(2)(ctx) is ctx
    assert keep_last(5)(ctx) is ctx
    trimmed = keep_last(1)(ctx)
    assert dict(trimmed.artifacts) == {"a": 1}
    assert trimmed.messages[0] is ctx.messages[1]


def test_drop_tool_messages() -> None:
    call = (ToolCall("t1", "search"),)
    ctx = Context(
        [
            Message("user", "find it"),
            Message("assistant", "", tool_calls=call),
            Message("tool", "found", tool_call_id="t1"),
            Message("assistant", "Let me check", tool_calls=call),  # has text: kept
            Message("assistant", "here it is"),
        ]
    )
    out = drop_tool_messages(ctx)
    assert texts(out) == ["user:find it", "assistant:Let me check", "assistant:here it is"]
    assert out.messages[1] is ctx.messages[3]
    plain = Context(msgs("user:a", "assistant:b"))
    assert drop_tool_messages(plain) is plain


def test_redact_replaces_every_pattern_and_keeps_message_fields() -> None:
    call = (ToolCall("t1", "pay"),)
    ctx = Context(
        [
            Message("user", "key sk-abc123 and sk-def456", "alice"),
            Message("assistant", "ok, card 1234", "bot", call),
            Message("user", "nothing secret"),
        ]
    )
    out = redact(r"sk-\w+", r"\d{4}", replacement="***")(ctx)
    assert [(m.role, m.content, m.name, m.tool_calls) for m in out.messages] == [
        ("user", "key *** and ***", "alice", ()),
        ("assistant", "ok, card ***", "bot", call),
        ("user", "nothing secret", None, ()),
    ]
    assert out.messages[2] is ctx.messages[2]  # untouched messages are shared
    assert texts(ctx)[0] == "user:key sk-abc123 and sk-def456"
    assert redact(r"zzz")(ctx) is ctx


def test_filters_are_plain_sync_functions_of_a_context() -> None:
    ctx = Context(msgs("user:a", "tool:b", "user:sk-secret1"))
    for f in (keep_last(1), drop_tool_messages, redact(r"sk-\w+")):
        out = f(ctx)
        assert isinstance(out, Context)
    assert texts(ctx) == ["user:a", "tool:b", "user:sk-secret1"]


# --- properties ----------------------------------------------------------------------------------

message = st.builds(Message, st.sampled_from(ROLES), st.text(max_size=5))


@given(st.lists(st.lists(message, max_size=4), max_size=8))
def test_a_chain_of_extends_equals_the_concatenation(chunks: list[list[Message]]) -> None:
    ctx = Context()
    seen: list[Context] = [ctx]
    for chunk in chunks:
        ctx = ctx.extend(*chunk)
        seen.append(ctx)
    flat = [m for chunk in chunks for m in chunk]
    assert list(ctx.messages) == flat and len(ctx) == len(flat)
    # every intermediate context still sees exactly its own prefix
    for i, c in enumerate(seen):
        n = sum(len(chunk) for chunk in chunks[:i])
        assert list(c.messages) == flat[:n]


@given(st.lists(message, max_size=12), st.integers(min_value=0, max_value=14))
def test_keep_last_property(messages: list[Message], n: int) -> None:
    ctx = Context(messages)
    out = list(keep_last(n)(ctx).messages)
    if len(messages) <= n:
        assert out == messages
    else:
        head = [m for m in messages[: len(messages) - n] if m.role == "system"]
        assert out == head + messages[len(messages) - n :]


# --- O(1) turns, branching, pickling -------------------------------------------------------------


def _turn_allocation(ctx: Context) -> int:
    """Bytes allocated by one agent turn's context work: view, last user message, append."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        view = ctx.history
        assert view.last_user is not None
        nxt = ctx.extend(Message("assistant", "a"))
        assert nxt.last_user is ctx.last_user
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return allocated


def test_a_turn_costs_the_same_at_any_history_length() -> None:
    short = Context(msgs("user:q")).extend(*msgs("assistant:a"))
    long = Context(msgs("user:q"))
    for i in range(20_000):  # a long conversation built turn by turn, as agents do
        long = long.extend(Message("assistant", f"a{i}"))
    # Materialising 20,000 messages would allocate >= 160 KB; a turn is a few small objects.
    assert _turn_allocation(long) < 2_000
    assert _turn_allocation(short) < 2_000
    assert long.last_user == Message("user", "q") and len(long) == 20_001


def test_history_is_a_read_only_sequence_equal_to_the_messages() -> None:
    ctx = Context(msgs("user:a", "assistant:b")).extend(*msgs("user:c"))
    view = ctx.history
    assert view == ctx.messages and view == list(ctx.messages)
    assert (view[0].content, view[-1].content, len(view)) == ("a", "c", 3)
    assert view[1:] == ctx.messages[1:] and isinstance(view[1:], tuple)
    with pytest.raises(IndexError):
        view[3]
    assert ctx.last_user == Message("user", "c")
    assert Context(msgs("assistant:x")).last_user is None


def test_a_branch_from_an_older_context_does_not_see_later_appends() -> None:
    base = Context(msgs("user:q"))
    tip = base.extend(*msgs("assistant:1")).extend(*msgs("assistant:2"))
    branch = base.extend(*msgs("assistant:other"))  # base is no longer the tip
    tip2 = tip.extend(*msgs("user:3"))
    assert texts(branch) == ["user:q", "assistant:other"]
    assert texts(tip2) == ["user:q", "assistant:1", "assistant:2", "user:3"]
    assert texts(tip) == ["user:q", "assistant:1", "assistant:2"]
    assert tip2.since(base) == tuple(msgs("assistant:1", "assistant:2", "user:3"))
    assert branch.messages[0] is tip2.messages[0]  # the prefix is shared, not copied


def test_context_pickles_with_its_messages_artifacts_and_metadata() -> None:
    ctx = (
        Context(msgs("user:q"), artifacts={"doc": [1, 2]}, metadata={"lang": "en"})
        .extend(Message("assistant", "a", "bot", (ToolCall("t", "f"),)))
        .with_artifacts(plan="p")
    )
    back = pickle.loads(pickle.dumps(ctx))
    assert back.to_dict() == ctx.to_dict()
    assert back.last_user == Message("user", "q") and len(back) == 2


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.lists(message, max_size=3))))
def test_any_tree_of_extends_keeps_each_lineage(ops: list[tuple[int, list[Message]]]) -> None:
    contexts: list[tuple[Context, list[Message]]] = [(Context(), [])]
    for parent_index, new in ops:
        parent, expected = contexts[parent_index % len(contexts)]
        contexts.append((parent.extend(*new), expected + new))
    for ctx, expected in contexts:
        assert list(ctx.history) == expected and list(ctx.messages) == expected
        users = [m for m in expected if m.role == "user"]
        assert ctx.last_user == (users[-1] if users else None)


@given(
    st.lists(st.lists(message, max_size=300), max_size=4),
    st.integers(min_value=-700, max_value=700),
    st.integers(min_value=-700, max_value=700),
)
def test_history_slices_match_tuple_slices(chunks: list[list[Message]], a: int, b: int) -> None:
    ctx = Context()
    for chunk in chunks:  # chunks of up to 300 messages cross the in-place append limit
        ctx = ctx.extend(*chunk)
    flat = tuple(m for chunk in chunks for m in chunk)
    assert ctx.history[a:b] == flat[a:b] and ctx.history[a:] == flat[a:]
    assert ctx.history[::2] == flat[::2]
