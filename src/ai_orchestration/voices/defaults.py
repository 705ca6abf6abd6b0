"""The real local voices of the embedded default ``AiOrchestration()``: no API key, no network.

Three voices disagree for real: Gemma 3 270M with two different few-shot prompts, scorings and
sampling settings, and an e5 embedding model, which on free text picks among the Gemma voices'
answers when they differ. Constructing them loads nothing; each model loads on the first call
and is then shared by every voice in the process.

>>> [v.name for v in default_voices()]
['gemma-qa', 'gemma-trivia', 'e5-similarity']
"""

from __future__ import annotations

from ai_orchestration.voices._types import Voice

__all__ = ["default_voices"]


def default_voices() -> list[Voice]:
    """Fresh default voices: greedy Gemma (Q&A prompt, summed log-likelihood), sampled Gemma
    (trivia prompt, per-token mean log-likelihood, temperature 0.7, seed 7), e5 similarity.
    """
    from ai_orchestration.voices.embedding import EmbeddingVoice
    from ai_orchestration.voices.local import QA_STYLE, TRIVIA_STYLE, LlamaCppVoice

    return [
        LlamaCppVoice("gemma-qa", prompt=QA_STYLE, temperature=0.0, seed=0, scoring="sum"),
        LlamaCppVoice("gemma-trivia", prompt=TRIVIA_STYLE, temperature=0.7, seed=7, scoring="mean"),
        EmbeddingVoice("e5-similarity"),
    ]
