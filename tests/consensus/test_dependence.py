"""Dependence between voices: co-votes, error correlation and the design-effect temperature."""

from __future__ import annotations

import numpy as np
import pytest

from ai_orchestration.consensus._data import parse_votes
from ai_orchestration.consensus._dependence import co_votes, design_effect, error_correlation

# truth is "A" on all four items
ANSWERS = {"a": "AABB", "b": "AABB", "c": "ABAB"}


def table(voices: str):  # type: ignore[no-untyped-def]
    rows = [{"item": i, "voice": v, "answer": ANSWERS[v][i]} for v in voices for i in range(4)]
    return parse_votes(rows)


def certain(t) -> np.ndarray:  # type: ignore[no-untyped-def]
    post = np.zeros((t.n_items, t.n_labels))
    post[:, t.labels.index("A")] = 1.0
    return post


def test_co_votes_count_every_pair_on_an_item_once() -> None:
    t = table("abc")
    pairs = co_votes(t)
    assert len(pairs.a) == 4 * 3  # three pairs on each of four items
    overlap = pairs.overlap(t)
    assert overlap.tolist() == [[0, 4, 4], [4, 0, 4], [4, 4, 0]]
    # a and b answer alike on all 4 items, a and c on items 0 and 3
    agreement = pairs.agreement(t)
    assert agreement[0, 1] == 4 and agreement[0, 2] == 2 and agreement[1, 2] == 2


def test_exact_copies_have_error_correlation_one_and_count_once() -> None:
    # each is wrong on 2 of 4 items (e = .5), both wrong alike on 2/4; independent errors over
    # K - 1 = 1 wrong answer predict .5·.5 = .25: rho = (.5 - .25) / (.5·.5) = 1
    t = table("ab")
    rho = error_correlation(t, certain(t), min_overlap=4)
    assert rho == pytest.approx(1.0)
    # two votes per item: temperature 1 + (2 - 1)·1 = 2 turns the copies' summed evidence
    # back into one vote's
    assert design_effect(t, rho) == pytest.approx(2.0)


def test_independent_errors_have_no_correlation() -> None:
    # a wrong on items 2, 3; c on 1, 3: both wrong alike on item 3 only, 1/4 = .25 = predicted
    t = table("ac")
    assert error_correlation(t, certain(t), min_overlap=4) == pytest.approx(0.0)


def test_pairs_below_the_minimum_overlap_say_nothing() -> None:
    t = table("ab")
    assert error_correlation(t, certain(t), min_overlap=5) == 0.0
    assert design_effect(t, 0.0) == 1.0
