"""Bad batch input: typed errors naming the problem, never NaN or a numpy crash."""

from __future__ import annotations

import math

import pytest

from ai_orchestration.consensus import (
    METHODS,
    MajorityVote,
    calibration_report,
)
from ai_orchestration.consensus._base import Aggregator
from ai_orchestration.errors import ConsensusError, InputError

ALL: list[type[Aggregator]] = list(METHODS.values())
GOOD = [
    {"item": 1, "voice": "a", "answer": "X"},
    {"item": 1, "voice": "b", "answer": "Y"},
    {"item": 2, "voice": "a", "answer": "Y"},
]


@pytest.fixture(params=ALL, ids=lambda c: c.__name__)
def model(request: pytest.FixtureRequest) -> Aggregator:
    cls: type[Aggregator] = request.param
    return cls()


def test_empty(model: Aggregator) -> None:
    with pytest.raises(InputError, match="the vote set is empty"):
        model.fit([])


def test_all_failed(model: Aggregator) -> None:
    votes = [{"item": 1, "voice": "a", "answer": None, "error": "down"}]
    with pytest.raises(ConsensusError, match="all 1 votes failed"):
        model.fit(votes)


@pytest.mark.parametrize("conf", [math.nan, -0.1, 1.5, "high"])
def test_bad_confidence(model: Aggregator, conf: object) -> None:
    votes = [{"item": 1, "voice": "a", "answer": "X", "confidence": conf}]
    with pytest.raises(InputError, match=r"vote row 0.*confidence"):
        model.fit(votes)


def test_duplicates(model: Aggregator) -> None:
    with pytest.raises(InputError, match="duplicated vote: item 1, voice 'a'"):
        model.fit([*GOOD, {"item": 1, "voice": "a", "answer": "Z"}])


def test_missing_key(model: Aggregator) -> None:
    with pytest.raises(InputError, match=r"vote row 0 lacks key.*answer"):
        model.fit([{"item": 1, "voice": "a"}])


def test_gold_for_unknown_items(model: Aggregator) -> None:
    with pytest.raises(InputError, match=r"gold names 1 item.*'ghost'"):
        model.fit(GOOD, {"ghost": "X"})


def test_bad_distribution(model: Aggregator) -> None:
    votes = [{"item": 1, "voice": "a", "answer": "X", "distribution": {"X": -1}}]
    with pytest.raises(InputError, match="distribution value -1"):
        model.fit(votes)


def test_single_voice_and_unseen_answers_and_voices(model: Aggregator) -> None:
    model.fit([{"item": 1, "voice": "a", "answer": "X"}])
    new = [
        {"item": 9, "voice": "a", "answer": "NEW"},
        {"item": 9, "voice": "stranger", "answer": "NEW"},
    ]
    proba = model.predict_proba(new)
    assert proba[9]["X"] < proba[9]["NEW"]
    assert sum(proba[9].values()) == pytest.approx(1.0)
    assert model.predict(new) == {9: "NEW"}


def test_failed_rows_are_skipped(model: Aggregator) -> None:
    votes = [*GOOD, {"item": 2, "voice": "b", "answer": None, "error": "timeout"}]
    proba = model.fit(votes).predict_proba(votes)
    assert all(math.isfinite(p) for d in proba.values() for p in d.values())
    # the failed row counts for nothing: same result as never having seen it
    without = type(model)().fit(GOOD).predict_proba(GOOD)
    assert proba.keys() == without.keys()
    for item, dist in proba.items():
        assert dist == pytest.approx(without[item], abs=1e-12)


def test_one_mapping_is_not_a_vote_set() -> None:
    with pytest.raises(InputError, match="got one mapping"):
        MajorityVote().fit({"item": 1, "voice": "a", "answer": "X"})


def test_calibration_report_bad_input() -> None:
    with pytest.raises(InputError, match="no prediction"):
        calibration_report({"a": {"X": 1.0}}, {"b": "X"})
    with pytest.raises(InputError, match="at least one gold item"):
        calibration_report({"a": {"X": 1.0}}, {})


@pytest.mark.parametrize("key", ["item", "voice"])
def test_a_frame_row_without_item_or_voice_names_the_row(model: Aggregator, key: str) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"item": [1, 1, 2, 2], "voice": ["a", "b", "a", "b"], "answer": ["X", None, "Y", "Y"]}
    )
    frame.loc[3, key] = None  # row 1 failed (no answer) and is skipped; row 3 is bad
    with pytest.raises(InputError, match=f"vote row 3: {key} is missing"):
        model.fit(frame)
