"""Adaptive ensembles: stopping rule and voice ordering, hand-computed."""

from __future__ import annotations

import math

import pytest

from ai_orchestration.consensus import Vote, decide, order_voices, should_stop
from ai_orchestration.errors import InputError

REL = {"a": 0.9, "b": 0.9, "c": 0.6}


def test_one_vote_is_not_enough() -> None:
    # K = 2, w = log 9: P(X) = 9/10 < .95; margin log 9 equals b's |w|, so b could still tie
    d = decide([Vote("a", "X")], ["b"], REL)
    assert not d.stop and d.reason == "continue"
    assert d.posterior == pytest.approx(0.9)
    assert d.margin == pytest.approx(math.log(9)) and d.remaining_weight == pytest.approx(
        math.log(9)
    )


def test_target_reached() -> None:
    # two votes of log 9: P(X) = 81/82
    d = decide([Vote("a", "X"), Vote("b", "X")], ["c"], REL)
    assert d.stop and d.reason == "target reached"
    assert d.posterior == pytest.approx(81 / 82) and d.leader == "X"


def test_outcome_settled_before_target() -> None:
    # target .999 not reached (81/82), but c's weight log 1.5 cannot beat margin 2·log 9
    d = decide([Vote("a", "X"), Vote("b", "X")], ["c"], REL, target=0.999)
    assert d.stop and d.reason == "outcome settled"


def test_failed_votes_and_no_votes() -> None:
    assert not should_stop([Vote("a", None, error="down")], ["b"], REL)
    assert should_stop([], [], REL)


def test_order_voices() -> None:
    cost = {"a": 1.0, "b": 0.1, "c": 0.1}
    assert order_voices(["a", "b", "c"], cost=cost, reliability=REL, by="cost") == ["b", "c", "a"]
    # value = log-odds / cost: a 2.2, b 22, c 4.05
    assert order_voices(["a", "b", "c"], cost=cost, reliability=REL) == ["b", "c", "a"]
    with pytest.raises(InputError, match="cost of voice 'a'"):
        order_voices(["a"], cost={"a": -1.0})


def test_bad_target() -> None:
    with pytest.raises(InputError, match="target"):
        decide([], ["a"], target=0.0)
