"""The output codec: every recorded kind of value round-trips exactly, failures name the path."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_orchestration._steps import RouteOutcome
from ai_orchestration.agents import TeamResult
from ai_orchestration.consensus import Consensus, Vote
from ai_orchestration.context import Context, Message, ToolCall
from ai_orchestration.engine import decode, encode, from_data, register_type, to_data
from ai_orchestration.errors import SerializationError
from ai_orchestration.routing import RouteDecision
from ai_orchestration.voices import Usage, VoiceResponse


def roundtrip(value: Any) -> Any:
    return decode(encode(value))


def test_a_vote_keeps_every_field_that_to_dict_drops() -> None:
    vote = Vote("gemma", "Paris", 0.75, {"Paris": 0.75, "Lyon": 0.25}, None, 0.125, 0.002)
    assert roundtrip(vote) == vote
    failed = Vote("claude", None, error="timeout after 2 s", latency_s=2.0)
    assert roundtrip(failed) == failed


def test_consensus_context_response_route_and_team_results_round_trip() -> None:
    votes = (Vote("a", "Mars", 0.9), Vote("b", None, error="boom"))
    consensus = Consensus(
        "Mars", 0.8, {"Mars": 0.8, "(other)": 0.2}, {"a": 1.0}, 1.0, "bayesian", votes,
        explanation={"priors": "neutral", "clusters": [["Mars"]]},
    )  # fmt: skip
    call = ToolCall("c1", "transfer_to_b", '{"x": 1}')
    ctx = Context(
        [Message("user", "hi"), Message("assistant", "", "bot", (call,))],
        artifacts={"plan": ("a", "b")},
        metadata={"lang": "en"},
    ).extend(Message("tool", "12:00", tool_call_id="c1"))
    response = VoiceResponse(
        "Mars", Usage(12, 3, 0.001, 1), "gemma", "stop", 0.5, {"k": [1]}, (call,),
        {"Mars": 0.9}, 0.9, raw={"not": "kept"},
    )  # fmt: skip
    route = RouteDecision(("a", "b"), "french", ("c",), "matched language", ("d",), True)
    outcome = RouteOutcome(frozenset({"publish", "notify"}), {"draft": "text"})
    team = TeamResult(ctx, "b", 3)
    for value in (consensus, response, route, outcome, Usage(1, 2, 0.5, 3)):
        assert roundtrip(value) == value
    back = roundtrip(ctx)
    assert isinstance(back, Context) and back.to_dict() == ctx.to_dict()
    assert back.artifacts["plan"] == ("a", "b")  # a tuple stays a tuple
    team_back = roundtrip(team)
    assert (team_back.agent, team_back.hops, team_back.answer) == ("b", 3, "12:00")
    assert roundtrip(response).raw is None  # the provider's raw payload is not part of it


def test_values_json_cannot_say_exactly_are_tagged() -> None:
    value = {
        "tuple": (1, (2, 3)),
        "set": {3, 1, 2},
        "frozen": frozenset({"x"}),
        "bytes": b"\x00\xff",
        "big": 2**80,
        "neg_big": -(2**70),
        "int_keys": {1: "one", (2, 3): "pair"},
        "$t": "a user's own key named like the tag",
        "inf": math.inf,
    }
    back = roundtrip(value)
    assert back == value
    assert type(back["tuple"]) is tuple and type(back["frozen"]) is frozenset
    assert math.isnan(roundtrip(math.nan))
    assert to_data([1, "a", None, 2.5]) == [1, "a", None, 2.5]  # plain JSON untouched


def test_an_unencodable_value_names_its_path() -> None:
    with pytest.raises(SerializationError) as err:
        encode({"items": [1, 2, 3, object()]}, path="steps.draft.output")
    assert err.value.path == "steps.draft.output.items[3]"
    assert "steps.draft.output.items[3]: cannot encode a object" in str(err.value)


def test_decoding_garbage_or_an_unknown_type_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="not an encoded value"):
        decode(b"{not json")
    with pytest.raises(SerializationError, match=r"unknown encoded type .acme\.Thing."):
        from_data({"$t": "acme.Thing", "v": {}})


@dataclasses.dataclass(frozen=True)
class Invoice:
    number: str
    lines: tuple[Vote, ...]


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    __hash__ = None  # type: ignore[assignment]


def test_users_register_their_own_types() -> None:
    register_type(Invoice, name="tests.Invoice")
    register_type(Money, name="tests.Money", encode=lambda m: m.cents, decode=Money)
    value = {"inv": Invoice("A-1", (Vote("a", "x"),)), "total": Money(1250)}
    assert roundtrip(value) == value
    with pytest.raises(ValueError, match="already registered"):
        register_type(Money, name="tests.Invoice", encode=lambda m: m.cents, decode=Money)
    with pytest.raises(TypeError, match="not a dataclass"):
        register_type(object, name="tests.object")


leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False)
    | st.binary(max_size=8)
)
hashable = st.recursive(
    leaf, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=8
)
values = st.recursive(
    leaf,
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(st.text(max_size=4), c, max_size=4)
        | st.dictionaries(hashable, c, max_size=3)
        | st.sets(hashable, max_size=3)
    ),
    max_leaves=20,
)


@given(values)
def test_any_value_round_trips(value: Any) -> None:
    assert roundtrip(value) == value
