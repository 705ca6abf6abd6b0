"""Multiple choice in a consensus step: options are matched exactly (normalised), never merged by
embedding similarity, and the fusion knows how many options there are (no "(other)" slot).

Regression tests for issue 9 items 3–4: the step used to cluster multiple-choice answers with
the free-text embedding clustering (merging "The way things should be." with "The way things
are.") and fused them over the voted answers plus an "(other)" candidate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ai_orchestration.consensus import Consensus, Vote, fuse
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.workflow import WorkflowBuilder

SHOULD, ARE = "The way things should be.", "The way things are."
CHOICES = (SHOULD, ARE, "The way things were.", "The way things will be.")


def all_alike(texts: list[str]) -> list[list[float]]:
    """An embedder under which every text is the same point: any two answers look equal."""
    return [[1.0, 0.0] for _ in texts]


def consensus_of(answers: dict[str, str], inp: Any, **options: Any) -> Consensus:
    voices = [FunctionVoice(name, lambda r, a=a: a) for name, a in answers.items()]
    wf = WorkflowBuilder("w").consensus("vote", voices, method="majority", **options).build()
    out = asyncio.run(wf.run(inp)).output
    assert isinstance(out, Consensus)
    return out


def test_step_never_merges_different_options_by_embedding() -> None:
    inp = {"prompt": "What is normative ethics about?", "choices": list(CHOICES)}
    out = consensus_of({"a": SHOULD, "b": ARE, "c": SHOULD}, inp, embed=all_alike)
    # two clusters, not one: SHOULD has 2 of 3 votes
    assert out.answer == SHOULD
    assert out.agreement == pytest.approx(2 / 3)
    assert out.explanation["voices"]["b"]["cluster"] == ARE


def test_step_fuses_over_the_given_options_without_an_other_slot() -> None:
    inp = {"prompt": "What is normative ethics about?", "choices": list(CHOICES)}
    out = consensus_of({"a": SHOULD, "b": ARE, "c": SHOULD}, inp)
    # majority shares over the four options: 2/3, 1/3, 0, 0 (floored at 1e-3 before softmax)
    assert set(out.distribution) == set(CHOICES)
    assert out.distribution[SHOULD] == pytest.approx(2 / 3, abs=2e-3)
    assert out.distribution[ARE] == pytest.approx(1 / 3, abs=2e-3)


def test_fuse_matches_answers_to_options_by_normalised_text() -> None:
    votes = [Vote("a", "the way things are"), Vote("b", ARE), Vote("c", SHOULD)]
    out = fuse(votes, choices=CHOICES, embed=all_alike)
    assert out.answer == ARE  # the option's own spelling
    assert out.agreement == pytest.approx(2 / 3)
    assert set(out.distribution) == set(CHOICES)


def test_fuse_keeps_an_answer_outside_the_options_apart() -> None:
    votes = [Vote("a", "none of these"), Vote("b", ARE), Vote("c", ARE)]
    out = fuse(votes, choices=CHOICES, embed=all_alike)
    assert out.answer == ARE
    assert set(out.distribution) == {*CHOICES, "none of these"}


def test_voice_distributions_over_options_are_kept_per_option() -> None:
    # one voice with its own distribution; "logpool" from neutral priors reads it as is
    dist = {SHOULD: 0.1, ARE: 0.6, CHOICES[2]: 0.2, CHOICES[3]: 0.1}
    out = fuse([Vote("a", ARE, distribution=dist)], method="logpool", choices=CHOICES)
    assert out.distribution == pytest.approx(dist)
