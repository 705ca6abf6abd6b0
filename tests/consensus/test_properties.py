"""Property tests: probabilities sum to 1, voice permutation changes nothing, a perfect
voice never lowers accuracy on its items."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ai_orchestration.consensus import (
    METHODS as ALL_METHODS,
)
from ai_orchestration.consensus import (
    BayesianFusion,
    LogPool,
    MajorityVote,
    WeightedVote,
)
from ai_orchestration.consensus._base import Aggregator

METHODS: list[type[Aggregator]] = list(ALL_METHODS.values())

vote_sets = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from(["v0", "v1", "v2", "v3"]),
        st.sampled_from(["A", "B", "C"]),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda t: (t[0], t[1]),
)


def as_rows(votes: list[tuple[int, str, str, float | None]]) -> list[dict[str, object]]:
    return [{"item": i, "voice": v, "answer": a, "confidence": c} for i, v, a, c in votes]


def fitted(cls: type[Aggregator]) -> Aggregator:
    return cls(cv_folds=0) if cls is not LogPool else LogPool(cv_folds=0, steps=60)


@settings(max_examples=25, deadline=None)
@given(votes=vote_sets, which=st.sampled_from(METHODS))
def test_probabilities_sum_to_one_and_are_finite(
    votes: list[tuple[int, str, str, float | None]], which: type[Aggregator]
) -> None:
    proba = fitted(which).fit_predict_proba(as_rows(votes))
    for dist in proba.values():
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in dist.values())
        assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)


@settings(max_examples=25, deadline=None)
@given(votes=vote_sets, which=st.sampled_from(METHODS), perm=st.permutations(range(4)))
def test_permuting_voices_changes_nothing(
    votes: list[tuple[int, str, str, float | None]],
    which: type[Aggregator],
    perm: list[int],
) -> None:
    rename = {f"v{i}": f"v{p}" for i, p in enumerate(perm)}
    shuffled = [(i, rename[v], a, c) for i, v, a, c in reversed(votes)]
    tol = 1e-9
    first = fitted(which).fit_predict_proba(as_rows(votes))
    second = fitted(which).fit_predict_proba(as_rows(shuffled))
    assert first.keys() == second.keys()
    for item, dist in first.items():
        for answer, p in dist.items():
            assert math.isclose(p, second[item][answer], rel_tol=1e-6, abs_tol=tol)


@settings(max_examples=25, deadline=None)
@given(
    votes=vote_sets,
    truth=st.lists(st.sampled_from(["A", "B", "C"]), min_size=6, max_size=6),
    answered=st.sets(st.integers(0, 5), min_size=1),
    which=st.sampled_from([MajorityVote, WeightedVote, BayesianFusion]),
)
def test_a_perfect_voice_never_lowers_accuracy_on_its_items(
    votes: list[tuple[int, str, str, float | None]],
    truth: list[str],
    answered: set[int],
    which: type[Aggregator],
) -> None:
    rows = as_rows(votes)
    gold = {i: truth[i] for i in {r["item"] for r in rows}}  # type: ignore[index]
    perfect = [{"item": i, "voice": "oracle", "answer": truth[i]} for i in sorted(answered)]
    before = which(calibrate=False).fit(rows, gold).predict(rows)
    after = which(calibrate=False).fit(rows + perfect, {**gold, **{i: truth[i] for i in answered}})
    predicted = after.predict(rows + perfect)
    for i in answered:
        if i in gold and before[i] == truth[i]:
            assert predicted[i] == truth[i]
