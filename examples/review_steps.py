"""Step functions for examples/review.yaml (a workflow file next to its step module)."""

from __future__ import annotations

from typing import Any


async def question(text: str) -> dict[str, Any]:
    """Turn the input into a multiple-choice question for the voices."""
    return {
        "prompt": f"Is this sentence positive or negative? {text}",
        "choices": ["positive", "negative"],
    }


async def report(consensus: Any) -> str:
    return f"{consensus.answer} (confidence {consensus.confidence:.2f})"
