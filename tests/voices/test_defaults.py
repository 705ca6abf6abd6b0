"""The embedded default panel: two model families and e5, with shipped fitted priors.

Tests without a marker load no model; ``llm`` tests run the real models on a few questions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.consensus import LogPool, Vote, echoes, fuse, normalise
from ai_orchestration.voices.defaults import default_pool, default_priors, default_voices
from ai_orchestration.voices.embedding import EmbeddingVoice
from ai_orchestration.voices.local import LlamaCppVoice

SMOKE = Path(__file__).parent.parent / "fixtures" / "free_text_smoke.json"


def test_default_panel_is_two_model_families_and_e5_with_shipped_priors() -> None:
    priors = default_priors()["voices"]
    gemma, smol, e5 = default_voices()
    assert isinstance(gemma, LlamaCppVoice) and isinstance(smol, LlamaCppVoice)
    assert isinstance(e5, EmbeddingVoice)
    assert [gemma.name, smol.name, e5.name] == list(priors)
    assert gemma.model == "gemma-3-270m-q4_k_m" and smol.model == "smollm2-135m-instruct-q4_1"
    for voice in (gemma, smol):
        assert voice.scoring == priors[voice.name]["scoring"]
        assert voice.option_temperature == priors[voice.name]["option_temperature"]
    assert e5.temperature == priors["e5-similarity"]["option_temperature"]


def test_shipped_priors_are_numbers_with_their_source() -> None:
    priors = default_priors()
    assert "MMLU" in priors["source"] and priors["fit_questions"] > 0
    for p in priors["voices"].values():
        assert p["option_temperature"] > 0 and p["pool_weight"] >= 0
        assert 0 <= p["accuracy"] <= 1
        assert p["fit_questions"] >= priors["fit_questions"]  # each alone, then jointly


def test_default_pool_is_the_fitted_log_linear_pool_of_the_priors() -> None:
    pool = default_pool()
    assert isinstance(pool, LogPool) and pool.fitted_ and pool.temperature_ == 1.0
    assert pool.weights_ == {v: p["pool_weight"] for v, p in default_priors()["voices"].items()}


def test_a_pool_fuses_the_voices_option_probabilities_by_its_weights() -> None:
    # log p(y) = 0.5·log p_a(y) + 2·log p_b(y): X ∝ 0.8^0.5·0.5^2 = 0.2236, Y ∝ 0.2^0.5·0.5^2
    # = 0.1118, so P(X) = 2/3 — voice b's indifference, weighted 2, adds nothing
    pool = LogPool(calibrate=False)
    pool.weights_, pool.fitted_ = {"a": 0.5, "b": 2.0}, True
    votes = [
        Vote("a", "X", distribution={"X": 0.8, "Y": 0.2}),
        Vote("b", "X", distribution={"X": 0.5, "Y": 0.5}),
    ]
    out = fuse(votes, method="logpool", reliability=pool, choices=("X", "Y"))
    assert out.distribution == pytest.approx({"X": 2 / 3, "Y": 1 / 3})
    assert out.explanation["voices"]["b"]["why"] == "fitted pool weight 2.000"


def _consensus_spec(system: AiOrchestration) -> Any:
    (step,) = system.workflow.steps
    return step.spec


def test_the_embedded_default_fuses_with_the_shipped_pool(tmp_path: Path) -> None:
    system = AiOrchestration({"state_dir": str(tmp_path)})
    spec = _consensus_spec(system)
    assert spec.method == "logpool"
    assert spec.options["reliability"].weights_ == default_pool().weights_
    system.close()


def test_a_configured_method_is_kept_with_the_default_voices(tmp_path: Path) -> None:
    system = AiOrchestration({"state_dir": str(tmp_path), "consensus": {"method": "majority"}})
    assert _consensus_spec(system).method == "majority"
    system.close()


def _smoke() -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = json.loads(SMOKE.read_text())["questions"]
    return questions


def test_smoke_set_is_thirteen_questions_whose_answers_do_not_echo_them() -> None:
    questions = _smoke()
    assert len(questions) == 13
    for q in questions:
        assert q["answers"] and not any(echoes(a, q["prompt"]) for a in q["answers"])


@pytest.mark.llm
def test_the_default_gives_no_echo_answers_on_questions_that_invite_them(tmp_path: Path) -> None:
    # the questions where a default voice echoed when measured (see README): few, to stay fast
    invite = {"What is the capital of Italy?", "What is 7 × 8?", "Who wrote Romeo and Juliet?"}
    system = AiOrchestration({"state_dir": str(tmp_path)})
    results = {q["prompt"]: system.process(q["prompt"]) for q in _smoke() if q["prompt"] in invite}
    system.close()
    assert len(results) == 3
    for prompt, result in results.items():
        assert result.answer is None or not echoes(result.answer, prompt), (prompt, result.answer)
        assert normalise(result.answer) != normalise(prompt)
