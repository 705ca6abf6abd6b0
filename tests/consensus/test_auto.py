"""``"auto"``: what it chooses from the evidence, and that it says why."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ai_orchestration.consensus import METHODS, Vote, fuse
from ai_orchestration.consensus._auto import AutoFusion
from ai_orchestration.errors import InputError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "votes"


def rows(answers: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"item": i, "voice": v, "answer": a}
        for v, line in answers.items()
        for i, a in enumerate(line)
    ]


def test_auto_is_registered_and_the_config_default() -> None:
    from ai_orchestration.config import ConsensusConfig

    assert METHODS["auto"] is AutoFusion
    assert ConsensusConfig().method == "auto"


def test_without_gold_it_fits_dawid_skene_with_the_design_effect_temperature() -> None:
    # a and b are copies; c independent (see test_dependence): over a, b, c on 4 items
    votes = rows({"a": "AABB" * 5, "b": "AABB" * 5, "c": "ABAB" * 5})
    auto = AutoFusion().fit(votes)
    assert auto.choice_ == "bayesian (unsupervised)"
    assert auto.temperature_ > 1.0
    assert "error correlation" in auto.reason_


def test_little_gold_is_clamped_into_dawid_skene() -> None:
    votes = rows({"a": "AB" * 10, "b": "AB" * 10, "c": "AA" * 10})
    auto = AutoFusion().fit(votes, {0: "A", 1: "B"})
    assert auto.choice_ == "bayesian"
    assert "2 gold item(s), fewer than 30" in auto.reason_


def test_fusion_that_beats_every_voice_is_kept() -> None:
    # three voices, each wrong on a different third of 60 items: the majority is always right,
    # every voice alone is right on 2/3
    truth = "AB" * 30
    flip = {"A": "B", "B": "A"}
    answers = {
        v: "".join(flip[t] if i // 20 == n else t for i, t in enumerate(truth))
        for n, v in enumerate("xyz")
    }
    votes = rows(answers)
    gold = dict(enumerate(truth))
    auto = AutoFusion().fit(votes, gold)
    assert auto.choice_ == "stacking"
    assert auto.scores_["stacking"]["accuracy"] == 1.0
    # the voice picked on the training folds is wrong on a third overall, so at most 2/3 held
    # out (less: the voice wrong least on the training folds is wrong most on the held-out one)
    assert auto.scores_["best voice"]["accuracy"] <= 2 / 3
    assert auto.predict(votes) == gold


def test_it_defers_to_a_voice_the_fusion_cannot_beat() -> None:
    # "good" is always right; x and y copy each other and are right half of the time
    truth = "AB" * 30
    votes = rows({"good": truth, "x": "AABB" * 15, "y": "AABB" * 15})
    auto = AutoFusion().fit(votes, dict(enumerate(truth)))
    assert auto.choice_ == "best voice (good)"
    assert "does not beat good alone" in auto.reason_
    assert auto.predict(votes) == dict(enumerate(truth))


def test_a_context_that_changes_who_is_right_is_used() -> None:
    # in category "m" voice p is right and q wrong, in "n" the reverse; r always says "A"
    truth = "AB" * 40
    flip = {"A": "B", "B": "A"}
    cat = {i: "m" if i < 40 else "n" for i in range(80)}
    p = "".join(t if cat[i] == "m" else flip[t] for i, t in enumerate(truth))
    q = "".join(flip[t] if cat[i] == "m" else t for i, t in enumerate(truth))
    votes = rows({"p": p, "q": q, "r": "A" * 80})
    gold = dict(enumerate(truth))
    auto = AutoFusion().fit(votes, gold, context=cat)
    assert auto.choice_ == "stacking+context"
    assert auto.predict(votes, context=cat) == gold
    assert AutoFusion().fit(votes, gold).choice_ != "stacking+context"


def test_per_request_auto_explains_its_choice() -> None:
    c = fuse([Vote("a", "Paris"), Vote("b", "Paris"), Vote("c", "Lyon")], method="auto")
    assert c.answer == "Paris"
    assert c.explanation["auto"]["chose"] == "weighted"
    assert "no history" in c.explanation["auto"]["why"]
    learned = fuse(
        [Vote("a", "Paris"), Vote("b", "Lyon")], method="auto", reliability={"a": 0.4, "b": 0.9}
    )
    assert learned.answer == "Lyon"
    assert "learned accuracies" in learned.explanation["auto"]["why"]


def test_min_gold_must_allow_the_folds() -> None:
    with pytest.raises(InputError, match="min_gold"):
        AutoFusion(min_gold=5, folds=5)


@pytest.mark.skipif(not DATA.is_dir(), reason="real votes absent: ../shared/data/votes/")
def test_mmlu_pro_ten_percent_gold_beats_the_best_single_voice() -> None:
    pd = pytest.importorskip("pandas")
    with gzip.open(DATA / "mmlu_pro_dev.votes.csv.gz", "rt") as f:
        votes = pd.read_csv(f, dtype=str, keep_default_na=False)
    with gzip.open(DATA / "mmlu_pro_dev.gold.csv.gz", "rt") as f:
        gold_frame = pd.read_csv(f, dtype=str, keep_default_na=False)
    votes["answer"] = votes["answer"].where(votes["answer"] != "", None)
    truth = dict(zip(gold_frame["item"], gold_frame["answer"], strict=True))
    items = sorted(truth)
    picked = set(np.random.default_rng(0).permutation(items)[: len(items) // 10].tolist())
    test = [it for it in items if it not in picked]
    right = votes["answer"].to_numpy() == votes["item"].map(truth).to_numpy()
    on_gold = votes["item"].isin(picked).to_numpy()
    best = pd.Series(right[on_gold], index=votes["voice"][on_gold]).groupby(level=0).sum().idxmax()
    mine = votes[votes["voice"] == best].set_index("item")["answer"]
    best_acc = float(np.mean([mine.get(it) == truth[it] for it in test]))
    auto = AutoFusion().fit(votes, {it: truth[it] for it in picked})
    pred = auto.predict(votes)
    acc = float(np.mean([pred.get(it) == truth[it] for it in test]))
    # measured at this split: 0.743 against the best voice's 0.726 (gemini-1.5-pro-002)
    assert acc >= best_acc + 0.01
