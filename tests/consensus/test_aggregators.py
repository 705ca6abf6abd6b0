"""Batch aggregators on hand-computed cases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from ai_orchestration.consensus import (
    AttentionFusion,
    BayesianFusion,
    DempsterShafer,
    LogPool,
    MajorityVote,
    WeightedVote,
    calibration_report,
    fit_temperature,
)
from ai_orchestration.consensus._base import Aggregator
from ai_orchestration.consensus._calibration import holdout_temperature
from ai_orchestration.consensus._data import parse_votes


def rows(*triples: tuple[object, str, object]) -> list[dict[str, object]]:
    return [{"item": i, "voice": v, "answer": a} for i, v, a in triples]


TWO = rows((1, "a", "X"), (1, "b", "Y"))
RELIABILITY = {"a": 0.9, "b": 0.6}


def test_majority_vote_share_and_deterministic_tie_break() -> None:
    votes = rows((1, "a", "X"), (1, "b", "X"), (1, "c", "Y"), (2, "a", "Y"), (2, "b", "X"))
    model = MajorityVote()
    assert model.fit_predict(votes) == {1: "X", 2: "X"}  # item 2 ties: first in sorted order
    proba = model.predict_proba(votes)
    assert proba[1] == pytest.approx({"X": 2 / 3, "Y": 1 / 3})
    assert proba[2] == pytest.approx({"X": 0.5, "Y": 0.5})


def test_weighted_two_voices_exact_posterior() -> None:
    # w = log((K-1)p/(1-p)) with K=2: w_a = log 9, w_b = log 1.5,
    # so P(X) = 9 / (9 + 1.5) = 0.857142857...
    proba = WeightedVote.from_reliability(RELIABILITY).predict_proba(TWO)
    assert proba[1]["X"] == pytest.approx(9 / 10.5)
    assert proba[1]["Y"] == pytest.approx(1.5 / 10.5)


def test_bayesian_from_reliability_equals_one_coin_posterior() -> None:
    # symmetric confusions: P(X) ∝ 0.9·0.4, P(Y) ∝ 0.1·0.6 -> 0.36 / 0.42
    proba = BayesianFusion.from_reliability(RELIABILITY).predict_proba(TWO)
    assert proba[1]["X"] == pytest.approx(0.36 / 0.42)


def test_bayesian_supervised_confusion_with_dirichlet_prior() -> None:
    # one voice, gold A,B,B, answers A,A,B; prior pseudo-counts diag 2, off 1 (K=2):
    # row A: [1+2, 0+1]/4 = [.75, .25]; row B: [1+1, 1+2]/5 = [.4, .6]
    # class prior (counts + 1)/(N + K) = [2/5, 3/5]
    votes = rows((1, "v", "A"), (2, "v", "A"), (3, "v", "B"))
    model = BayesianFusion(calibrate=False).fit(votes, {1: "A", 2: "B", 3: "B"})
    assert model.confusion("v") == {
        "A": pytest.approx({"A": 0.75, "B": 0.25}),
        "B": pytest.approx({"A": 0.4, "B": 0.6}),
    }
    # a new item answered A: P(A) ∝ 0.4·0.75 = 0.3, P(B) ∝ 0.6·0.4 = 0.24
    proba = model.predict_proba(rows(("new", "v", "A")))
    assert proba["new"]["A"] == pytest.approx(0.3 / 0.54)


def test_bayesian_unsupervised_learns_a_spammer() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300)
    votes = []
    for i, t in enumerate(truth):
        for v, acc in (("good1", 0.9), ("good2", 0.85), ("good3", 0.8)):
            votes.append(
                {"item": i, "voice": v, "answer": int(t if rng.random() < acc else (t + 1) % 3)}
            )
        votes.append({"item": i, "voice": "spam", "answer": 0})
    model = BayesianFusion().fit(votes)
    assert model.reliability_["spam"] < 0.45 < 0.8 < model.reliability_["good1"]
    pred, plain = model.predict(votes), MajorityVote().fit_predict(votes)
    ours = np.mean([pred[i] == t for i, t in enumerate(truth)])
    assert ours > np.mean([plain[i] == t for i, t in enumerate(truth)])


def test_bayesian_confidence_bins_trust_only_what_was_earned() -> None:
    # voice "loud" says 0.99 on everything but is right half the time; "calm" is always right
    votes, gold = [], {}
    for i in range(40):
        truth = "A" if i % 2 else "B"
        gold[i] = truth
        votes.append({"item": i, "voice": "calm", "answer": truth, "confidence": 0.6})
        votes.append({"item": i, "voice": "loud", "answer": "A", "confidence": 0.99})
    model = BayesianFusion(confidence_bins=[0.5, 0.9], calibrate=False).fit(votes, gold)
    assert model.reliability_["loud"] == pytest.approx(0.5, abs=0.05)
    assert model.predict(votes) == gold


def test_dempster_shafer_two_voices_exact() -> None:
    # m_a(X)=.9, m_a(Θ)=.1; m_b(Y)=.6, m_b(Θ)=.4. Unnormalised: X .36, Y .06, Θ .04 (conflict .54)
    # pignistic: X = (.36 + .04/2)/.46 = .826087, Y = (.06 + .02)/.46 = .173913
    proba = DempsterShafer.from_reliability(RELIABILITY).predict_proba(TWO)
    assert proba[1]["X"] == pytest.approx(0.38 / 0.46)
    assert proba[1]["Y"] == pytest.approx(0.08 / 0.46)


def test_log_pool_multiplies_distributions() -> None:
    # unit weights: (0.8·0.6, 0.2·0.4) = (0.48, 0.08) -> P(X) = 0.48/0.56
    votes = [
        {"item": 1, "voice": "a", "answer": "X", "distribution": {"X": 0.8, "Y": 0.2}},
        {"item": 1, "voice": "b", "answer": "X", "distribution": {"X": 0.6, "Y": 0.4}},
    ]
    proba = LogPool.from_reliability({}).predict_proba(votes)
    assert proba[1]["X"] == pytest.approx(0.48 / 0.56)


def test_log_pool_learns_to_drop_a_duplicated_voice() -> None:
    rng = np.random.default_rng(0)
    votes, gold = [], {}
    for i in range(400):
        t = int(rng.integers(0, 2))
        gold[i] = t
        echo = t if rng.random() < 0.6 else 1 - t
        for v in ("echo1", "echo2", "echo3"):
            votes.append({"item": i, "voice": v, "answer": echo})
        votes.append({"item": i, "voice": "solo", "answer": t if rng.random() < 0.8 else 1 - t})
    model = LogPool(calibrate=False).fit(votes, gold)
    echoes = sum(model.weights_[f"echo{k}"] for k in (1, 2, 3))
    assert model.weights_["solo"] > echoes / 3
    assert model.predict(votes) != MajorityVote().fit_predict(votes)


def test_attention_weights_by_agreement_and_reliability() -> None:
    # r = .8 for all, β = 1: s_a = s_b = 1/2 (one of two others agrees), s_c = 0
    # a ∝ (e^.5, e^.5, 1); smoothed votes: X gets .8 from a and b, .2 from c
    votes = rows((1, "a", "X"), (1, "b", "X"), (1, "c", "Y"))
    model = AttentionFusion.from_reliability({"a": 0.8, "b": 0.8, "c": 0.8})
    model.beta_ = 1.0
    e = math.exp(0.5)
    z = 2 * e + 1
    expected_x = (2 * e * 0.8 + 0.2) / z
    assert model.predict_proba(votes)[1]["X"] == pytest.approx(expected_x)


def test_calibration_report_hand_computed() -> None:
    proba = {"q1": {"a": 0.8, "b": 0.2}, "q2": {"a": 0.6, "b": 0.4}}
    report = calibration_report(proba, {"q1": "a", "q2": "b"})
    assert report == pytest.approx(
        {
            "n": 2.0,
            "accuracy": 0.5,
            "log_loss": -(math.log(0.8) + math.log(0.4)) / 2,
            "brier": (0.08 + 0.72) / 2,
            "ece": (0.2 + 0.6) / 2,  # bins of 0.8 and 0.6 hold one item each
        }
    )


def test_fit_temperature_recovers_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 4)) * 3
    p = np.exp(logits / 2.0)
    p /= p.sum(axis=1, keepdims=True)
    y = np.asarray([rng.choice(4, p=row) for row in p])
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.05)


def test_temperature_fitted_on_gold_sharpens_majority() -> None:
    rng = np.random.default_rng(3)
    votes, gold = [], {}
    for i in range(200):
        t = int(rng.integers(0, 2))
        gold[i] = t
        for v in "abcde":
            votes.append({"item": i, "voice": v, "answer": t if rng.random() < 0.8 else 1 - t})
    model = MajorityVote().fit(votes, gold)
    assert model.temperature_ < 1.0
    before = calibration_report(MajorityVote().fit_predict_proba(votes), gold)
    after = calibration_report(model.predict_proba(votes), gold)
    assert after["log_loss"] < before["log_loss"]


def _two_voice_holdout(agree: int, n: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two voices of accuracy .8 (K = 2, uniform prior); ``agree`` of ``n`` items agree."""
    log_c = np.log(np.asarray([[0.8, 0.2], [0.2, 0.8]]))
    answers = [(0, 0)] * agree + [(0, 1)] * (n - agree)
    vote_loglik = np.asarray([log_c[:, a] for pair in answers for a in pair])
    vote_item = np.repeat(np.arange(n), 2)
    logits = np.log(0.5) + vote_loglik[0::2] + vote_loglik[1::2]
    return logits, vote_loglik, vote_item


def test_holdout_temperature_exact() -> None:
    # holding one vote out, the other gives q = σ(log 4 / T) to its own answer, and the
    # held-out vote is predicted to agree with probability .2 + .6·q; the likelihood peaks
    # where that equals the observed agreement f: q = (f − .2)/.6.
    # f = .68 is what independent voices of accuracy .8 give: q = .8, T = 1.
    assert holdout_temperature(*_two_voice_holdout(68)) == pytest.approx(1.0, rel=1e-4)
    # f = .62 (they agree less than their confusions claim): q = .7, T = log 4 / log(7/3)
    expected = math.log(4) / math.log(7 / 3)
    assert holdout_temperature(*_two_voice_holdout(62)) == pytest.approx(expected, rel=1e-4)


def _echoing_votes() -> list[dict[str, Any]]:
    """Four voices that share one error stream and an independent fifth, 300 items."""
    rng = np.random.default_rng(5)
    votes = []
    for i in range(300):
        t = int(rng.integers(0, 3))
        shared = t if rng.random() < 0.7 else int(rng.integers(0, 3))  # one error stream
        for v in "abcd":
            votes.append({"item": i, "voice": v, "answer": shared})
        votes.append({"item": i, "voice": "e", "answer": t if rng.random() < 0.7 else 0})
    return votes


def test_bayesian_without_gold_takes_the_holdout_temperature() -> None:
    votes = _echoing_votes()
    model = BayesianFusion().fit(votes)
    table = parse_votes(votes, labels=model.labels_)
    loglik = model._vote_loglik(table)
    expected = holdout_temperature(model._logits(table), loglik, table.item)
    assert model.temperature_ == pytest.approx(expected) and model.temperature_ != 1.0
    assert BayesianFusion(calibrate=False).fit(votes).temperature_ == 1.0


def test_weighted_vote_without_gold_takes_the_one_coin_holdout_temperature() -> None:
    votes = _echoing_votes()
    model = WeightedVote().fit(votes)
    table = parse_votes(votes, labels=model.labels_)
    loglik = model._vote_loglik(table)
    # the one-coin likelihood: p on the answer, (1 - p)/(K - 1) on each other answer
    p = np.asarray([model.reliability_[v] for v in table.voices])[table.voice]
    assert np.allclose(np.exp(loglik).sum(axis=1), 1.0)
    assert np.allclose(np.exp(loglik[np.arange(len(p)), table.label]), p)
    expected = holdout_temperature(model._logits(table), loglik, table.item)
    assert model.temperature_ == pytest.approx(expected) and model.temperature_ != 1.0
    assert WeightedVote(calibrate=False).fit(votes).temperature_ == 1.0


@pytest.mark.parametrize("cls", [BayesianFusion, WeightedVote])
def test_no_holdout_temperature_when_no_vote_shares_its_item(cls: type[Aggregator]) -> None:
    # each vote alone on its item: nothing predicts it, so the loss is flat in T and the
    # search used to land anywhere (voice order alone moved T and the probabilities)
    votes = [
        {"item": 0, "voice": "v1", "answer": "A"},
        {"item": 1, "voice": "v0", "answer": "B"},
        {"item": 2, "voice": "v0", "answer": "A"},
    ]
    assert cls().fit(votes).temperature_ == 1.0


def test_dataframe_input_matches_list_input() -> None:
    pd = pytest.importorskip("pandas")
    votes = rows((1, "a", "X"), (1, "b", "Y"), (2, "a", "Y"), (2, "b", "Y"), (2, "c", "X"))
    frame = pd.DataFrame(votes)
    from_frame = BayesianFusion().fit(frame).predict_proba(frame)
    from_list = BayesianFusion().fit(votes).predict_proba(votes)
    assert from_frame.keys() == from_list.keys()
    for item, dist in from_list.items():
        assert from_frame[item] == pytest.approx(dist)
