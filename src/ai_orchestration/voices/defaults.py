"""The real local voices of the embedded default ``AiOrchestration()``: no API key, no network.

Two model families and an embedding model: Gemma 3 270M and SmolLM2 135M Instruct (each
scoring multiple-choice options by log-likelihood and answering free text greedily), and e5,
which scores options by similarity to the question and, on free text, picks among the other
voices' answers when they differ. Constructing them loads nothing; each model loads on first
use and is then shared by every voice in the process.

Their reliability priors ship as fitted numbers in ``default_priors.json`` (fitted on MMLU
questions by ``benchmarks/bench_default_voices.py --fit``; no question is shipped): each
voice's scoring and option temperature, and the weights of the log-linear pool that fuses
them (:func:`default_pool`), fitted jointly so that voices repeating each other's errors are
not counted twice.

>>> [v.name for v in default_voices()]
['gemma-qa', 'smollm2-qa', 'e5-similarity']
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from ai_orchestration.voices._types import Voice

if TYPE_CHECKING:
    from ai_orchestration.consensus import LogPool

__all__ = ["default_pool", "default_priors", "default_voices"]


@functools.cache
def default_priors() -> dict[str, Any]:
    """The shipped priors: ``{"source": ..., "voices": {name: {scoring, option_temperature,
    pool_weight, accuracy}}}``."""
    text = resources.files(__package__).joinpath("default_priors.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def default_voices() -> list[Voice]:
    """Fresh default voices (the panel of the shipped priors) with their scoring and option
    temperatures."""
    from ai_orchestration.voices.embedding import EmbeddingVoice
    from ai_orchestration.voices.local import QA_STYLE, LlamaCppVoice

    models = {"gemma-qa": None, "smollm2-qa": "smollm2"}  # GGUF files shipped on PyPI
    voices: list[Voice] = []
    for name, p in default_priors()["voices"].items():
        if name == "e5-similarity":
            voices.append(EmbeddingVoice(name, temperature=p["option_temperature"]))
            continue
        voices.append(
            LlamaCppVoice(
                name,
                model_path=models[name],
                prompt=QA_STYLE,
                scoring=p["scoring"],
                option_temperature=p["option_temperature"],
            )
        )
    return voices


def default_pool() -> LogPool:
    """The log-linear pool of the default voices with its shipped weights (fitted, as is)."""
    from ai_orchestration.consensus import LogPool

    pool = LogPool(calibrate=False)
    pool.weights_ = {v: float(p["pool_weight"]) for v, p in default_priors()["voices"].items()}
    pool.fitted_ = True
    return pool
