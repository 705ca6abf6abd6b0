"""Per-request fusion: exact posteriors, quorum, abstention, explanation, structured answers."""

from __future__ import annotations

import pytest

from ai_orchestration.consensus import (
    METHODS,
    BayesianFusion,
    ReliabilityTracker,
    Vote,
    fuse,
)
from ai_orchestration.errors import ConsensusError, InputError


def test_weighted_two_voices_with_other_candidate() -> None:
    # K = 3 (X, Y and "(other)"): w = log(2p/(1-p)) -> X: 18, Y: 3, other: 1 -> P(X) = 18/22
    c = fuse([Vote("a", "X"), Vote("b", "Y")], method="weighted", reliability={"a": 0.9, "b": 0.6})
    assert c.answer == "X"
    assert c.confidence == pytest.approx(18 / 22)
    assert c.distribution == pytest.approx({"X": 18 / 22, "Y": 3 / 22, "(other)": 1 / 22})
    assert c.explanation["priors"] == "learned"
    assert c.explanation["voices"]["a"]["why"] == "learned accuracy 0.900"


def test_n_classes_replaces_the_other_candidate() -> None:
    # K = 2: P(X) = 9 / (9 + 1.5)
    c = fuse(
        [Vote("a", "X"), Vote("b", "Y")],
        method="bayesian",
        reliability={"a": 0.9, "b": 0.6},
        n_classes=2,
    )
    assert c.confidence == pytest.approx(9 / 10.5)
    assert set(c.distribution) == {"X", "Y"}


def test_failed_votes_are_kept_but_not_counted() -> None:
    votes = [Vote("a", "X"), Vote("b", None, error="timeout"), Vote("c", "X"), Vote("d", "Y")]
    c = fuse(votes)
    assert c.answer == "X"
    assert c.agreement == pytest.approx(2 / 3)
    assert c.votes == tuple(votes)
    assert c.explanation["failed"] == {"b": "timeout"}
    assert "b" not in c.weights


def test_quorum_names_the_count() -> None:
    votes = [Vote("a", "X"), Vote("b", None, error="boom")]
    with pytest.raises(ConsensusError, match=r"1 valid vote\(s\) of 2, 2 required"):
        fuse(votes, min_votes=2)


def test_all_voices_failing_is_a_consensus_error() -> None:
    with pytest.raises(ConsensusError, match="0 valid vote"):
        fuse([Vote("a", None, error="down"), Vote("b", None, error="down")])


def test_empty_votes() -> None:
    with pytest.raises(ConsensusError, match="0 valid vote"):
        fuse([])


def test_tie_abstains_with_the_distribution() -> None:
    c = fuse([Vote("a", "X"), Vote("b", "Y")])
    assert c.abstained and c.answer is None
    assert c.explanation["abstained"] == "tie between the leading answers"
    assert c.distribution["X"] == pytest.approx(c.distribution["Y"])


def test_abstain_below_threshold() -> None:
    votes = [Vote("a", "X"), Vote("b", "X"), Vote("c", "Y")]
    c = fuse(votes, method="weighted", abstain_below=0.9)
    # neutral p = 2/3, K = 3 -> w = log 4: X 16, Y 4, other 1 -> P(X) = 16/21 = 0.762 < 0.9
    assert c.abstained and c.answer is None
    assert c.confidence == pytest.approx(16 / 21)
    assert c.explanation["priors"] == "neutral (no history)"


def test_single_voice() -> None:
    c = fuse([Vote("solo", "42")], method="weighted")
    # neutral p = 2/3, K = 2 (42, other): w = log 2 -> P = 2/3
    assert c.answer == "42"
    assert c.confidence == pytest.approx(2 / 3)


def test_normalised_answers_share_a_cluster_and_the_common_spelling_wins() -> None:
    votes = [Vote("a", "Paris"), Vote("b", "paris."), Vote("c", "Paris"), Vote("d", "Lyon")]
    c = fuse(votes)
    assert c.answer == "Paris"
    assert c.agreement == pytest.approx(0.75)
    assert c.explanation["voices"]["b"]["cluster"] == "Paris"


def test_embedding_clusters_paraphrases_but_not_contradictions() -> None:
    vectors = {
        "The capital is Paris": [1.0, 0.0],
        "Paris is the capital": [0.99, 0.141],
        "The capital is Lyon": [0.98, 0.199],
    }
    votes = [Vote(str(i), text) for i, text in enumerate(vectors)]

    def embed(texts: list[str]) -> list[list[float]]:
        return [vectors[t] for t in texts]

    c = fuse(votes, embed=embed, threshold=0.95)
    # Lyon is similar enough but its named entity contradicts: two clusters, 2 vs 1
    assert c.answer == "The capital is Paris"
    assert c.agreement == pytest.approx(2 / 3)


def test_judge_can_veto_a_merge() -> None:
    votes = [Vote("a", "big house"), Vote("b", "large house")]
    c = fuse(votes, embed=lambda t: [[1.0, 0.0]] * len(t), judge=lambda x, y: False)
    assert c.abstained  # two clusters of one vote each: a tie


def test_structured_answers_fuse_field_by_field() -> None:
    votes = [
        Vote("a", {"city": "Paris", "year": 1889}),
        Vote("b", {"year": 1889.0, "city": "paris"}),
        Vote("c", {"city": "Lyon", "year": 1890}),
    ]
    c = fuse(votes)
    assert c.answer == {"city": "Paris", "year": 1889}
    assert c.explanation["fields"]["city"]["voices"] == 3
    assert c.agreement == pytest.approx(2 / 3)


def test_fitted_bayesian_model_is_used_as_is() -> None:
    rows = [
        {"item": i, "voice": v, "answer": "A" if i % 2 else "B"} for i in range(20) for v in "xy"
    ]
    model = BayesianFusion().fit(rows, {i: "A" if i % 2 else "B" for i in range(20)})
    c = fuse([Vote("x", "A"), Vote("y", "A")], method="bayesian", reliability=model)
    assert c.answer == "A"
    assert c.explanation["priors"] == "learned (fitted aggregator)"
    assert set(c.distribution) == {"A", "B"}


def test_tracker_history_changes_the_next_request() -> None:
    tracker = ReliabilityTracker()
    votes = [Vote("good", "X"), Vote("bad", "Y")]
    first = fuse(votes, method="weighted", reliability=tracker)
    assert first.abstained and first.explanation["priors"] == "neutral (no history)"
    assert first.explanation["voices"]["good"]["why"].startswith("no history")
    for _ in range(5):
        tracker.update([Vote("good", "X"), Vote("bad", "Y")], "X")
    second = fuse(votes, method="weighted", reliability=tracker)
    assert second.answer == "X"
    # good: (5+2)/(5+3) = .875, bad: 2/8 = .25; K = 3 -> X: 14, Y: 2/3, other: 1
    assert second.confidence == pytest.approx(14 / (14 + 2 / 3 + 1))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_answers_the_clear_case(method: str) -> None:
    votes = [Vote("a", "X", confidence=0.9), Vote("b", "X"), Vote("c", "Y", confidence=0.5)]
    c = fuse(votes, method=method, reliability={"a": 0.8, "b": 0.7, "c": 0.6})
    assert c.answer == "X" and not c.abstained
    assert sum(c.distribution.values()) == pytest.approx(1.0)
    assert set(c.weights) == {"a", "b", "c"}
    assert c.explanation["method"] == method


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(InputError, match="unknown consensus method 'vote'"):
        fuse([Vote("a", "X")], method="vote")
    with pytest.raises(InputError, match=r"voted twice.*: a"):
        fuse([Vote("a", "X"), Vote("a", "Y")])
    with pytest.raises(InputError, match=r"confidence nan is not in \[0, 1\]"):
        fuse([Vote("a", "X", confidence=float("nan"))], method="weighted")
    with pytest.raises(InputError, match="reliability of voice 'a' is not in"):
        fuse([Vote("a", "X")], method="weighted", reliability={"a": 1.5})
    with pytest.raises(InputError, match="Vote objects"):
        fuse(["X"])  # type: ignore[list-item]
