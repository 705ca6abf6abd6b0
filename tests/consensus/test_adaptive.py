"""Adaptive ensembles: stopping rule and voice ordering, hand-computed."""

from __future__ import annotations

import math

import pytest

from ai_orchestration.consensus import (
    BayesianFusion,
    Vote,
    decide,
    order_voices,
    redundant_pairs,
    should_stop,
)
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


# -- with fitted confusion matrices ----------------------------------------------------------
# Supervised fit on gold A, B, B with the neutral Dirichlet prior (diag 2, off 1), as in
# test_aggregators: a answered A, A, B -> C_a = [[.75, .25], [.4, .6]];
# b answered B, B, B -> C_b = [[.5, .5], [.2, .8]]; class prior (counts + 1)/(N + K) = [.4, .6].


@pytest.fixture(scope="module")
def model() -> BayesianFusion:
    votes = [
        {"item": i, "voice": v, "answer": a}
        for v, answers in (("a", "AAB"), ("b", "BBB"))
        for i, a in zip((1, 2, 3), answers, strict=True)
    ]
    return BayesianFusion(calibrate=False).fit(votes, {1: "A", 2: "B", 3: "B"})


def test_confusion_posterior_and_bound_keep_asking(model: BayesianFusion) -> None:
    # A: .4·.75 = .30, B: .6·.4 = .24 -> P(A) = 5/9; margin log 1.25.
    # b's answer B would swing B over A by log(.8/.5) = log 1.6 > log 1.25: keep asking.
    d = decide([Vote("a", "A")], ["b"], model)
    assert (d.stop, d.reason, d.leader) == (False, "continue", "A")
    assert d.posterior == pytest.approx(5 / 9)
    assert d.margin == pytest.approx(math.log(1.25))
    assert d.remaining_weight == pytest.approx(math.log(1.6))


def test_confusion_answer_b_is_settled_by_one_voice(model: BayesianFusion) -> None:
    # A: .4·.25 = .10, B: .6·.6 = .36 -> P(B) = .36/.46; margin log 3.6.
    # b can swing A over B by at most log(.5/.2) = log 2.5 < log 3.6: settled.
    d = decide([Vote("a", "b.")], ["b"], model)  # answers are normalised: "b." is B
    assert (d.stop, d.reason, d.leader) == (True, "outcome settled", "b.")
    assert d.posterior == pytest.approx(0.36 / 0.46)
    assert d.margin == pytest.approx(math.log(3.6))
    assert d.remaining_weight == pytest.approx(math.log(2.5))


def test_confusion_full_ensemble_equals_the_fitted_model(model: BayesianFusion) -> None:
    # A: .4·.75·.5 = .15, B: .6·.4·.2 = .048 -> .15/.198, as BayesianFusion.predict_proba
    d = decide([Vote("a", "A"), Vote("b", "A")], [], model)
    assert d.leader == "A" and d.posterior == pytest.approx(0.15 / 0.198)
    rows = [{"item": 0, "voice": v, "answer": "A"} for v in "ab"]
    assert model.predict_proba(rows)[0]["A"] == pytest.approx(d.posterior)


def test_confusion_unseen_answer_and_unknown_voice(model: BayesianFusion) -> None:
    # "C" unseen at fit: C_a grows to 3×3 (mean diagonal .675 for C, .1625 off, old block
    # × .8375); the prior gets min .4 for C, renormalised: [2, 3, 2]/7.
    # P(C) = .675·2 / (.1625·2 + .1625·3 + .675·2) = 1.35 / 2.1625
    d = decide([Vote("a", "C")], [], model)
    assert d.leader == "C" and d.posterior == pytest.approx(1.35 / 2.1625)
    # an unknown voice gets the neutral symmetric confusion (2/3): P(A) = .4·2/3 / (.4·2/3 + .6/3)
    d = decide([Vote("z", "A")], [], model)
    assert d.leader == "A" and d.posterior == pytest.approx(4 / 7)


def test_confusion_order_by_information_per_cost(model: BayesianFusion) -> None:
    # mutual information of a voice's answer with the truth under the class prior [.4, .6]:
    # a: P(answer A) = .54 -> I = .0612; b: P(answer A) = .32 -> I = .0494
    i_a = 0.4 * (0.75 * math.log(0.75 / 0.54) + 0.25 * math.log(0.25 / 0.46)) + 0.6 * (
        0.4 * math.log(0.4 / 0.54) + 0.6 * math.log(0.6 / 0.46)
    )
    i_b = 0.4 * (0.5 * math.log(0.5 / 0.32) + 0.5 * math.log(0.5 / 0.68)) + 0.6 * (
        0.2 * math.log(0.2 / 0.32) + 0.8 * math.log(0.8 / 0.68)
    )
    assert i_a > i_b
    assert order_voices(["b", "a"], cost={}, reliability=model) == ["a", "b"]
    cost = {"a": 1.0, "b": i_b / i_a * 0.99}  # b now gives slightly more per unit of cost
    assert order_voices(["a", "b"], cost=cost, reliability=model) == ["b", "a"]


def test_unfitted_model_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not fitted"):
        decide([Vote("a", "A")], [], BayesianFusion())


def test_redundant_pairs_compare_agreement_with_the_model(model: BayesianFusion) -> None:
    # independent errors predict agreement .4·(.75·.5 + .25·.5) + .6·(.4·.2 + .6·.8) = .536
    def votes(agree: int) -> list[dict[str, object]]:
        rows = []
        for i in range(4):
            rows += [{"item": i, "voice": "a", "answer": "A"}]
            rows += [{"item": i, "voice": "b", "answer": "A" if i < agree else "B"}]
        return rows

    assert redundant_pairs(votes(3), model, min_overlap=4) == {
        ("a", "b"): pytest.approx(0.75 - 0.536)
    }
    assert redundant_pairs(votes(3), model) == {}  # 4 shared items: below the default 10
    assert redundant_pairs(votes(2), model, min_overlap=4) == {}  # .5 - .536 < .2
    assert redundant_pairs(votes(3), model, excess=0.25, min_overlap=4) == {}


def test_order_voices_sends_the_later_of_a_redundant_pair_last() -> None:
    cost = {"a": 1.0, "b": 1.0, "c": 1.0}
    rel = {"a": 0.9, "b": 0.8, "c": 0.7}
    assert order_voices("abc", cost=cost, reliability=rel) == ["a", "b", "c"]
    assert order_voices("abc", cost=cost, reliability=rel, redundant=[("b", "a")]) == [
        "a",
        "c",
        "b",
    ]
