"""Property: any prompt or choices, however odd, give an answer or a typed error — and never a
failure in a later, unrelated run on another instance."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_orchestration import AiOrchestration, AiOrchestrationError
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceRequest


def _first_choice(request: VoiceRequest) -> str:
    return request.choices[0] if request.choices else request.prompt[:12] or "?"


def _echo(request: VoiceRequest) -> str:
    return request.prompt  # odd text comes back out of a voice too


odd_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),  # surrogates too
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " ", "\x00", "\u202e", "\ufeff", "e\u0301", "\U0001f600" * 20]),
)
choice = st.one_of(
    odd_text, st.integers(), st.floats(), st.none(), st.booleans(), st.lists(odd_text, max_size=2)
)
choices = st.lists(choice, max_size=5)
inputs = st.one_of(
    odd_text,
    st.fixed_dictionaries({"prompt": odd_text}),
    st.fixed_dictionaries({"prompt": odd_text, "choices": st.one_of(st.none(), odd_text, choices)}),
    st.fixed_dictionaries({"prompt": st.one_of(st.none(), st.integers(), st.lists(odd_text))}),
)


def _system(state: Path, *, echo: bool) -> AiOrchestration:
    cfg = {"state_dir": str(state), "consensus": {"method": "majority", "embed": "none"}}
    second = FunctionVoice("echo", _echo) if echo else FunctionVoice("also", _first_choice)
    return AiOrchestration(cfg, voices=[FunctionVoice("first", _first_choice), second])


@pytest.fixture(scope="module")
def systems() -> Iterator[tuple[AiOrchestration, AiOrchestration]]:
    with tempfile.TemporaryDirectory() as folder:
        fuzzed = _system(Path(folder) / "fuzzed", echo=True)
        other = _system(Path(folder) / "other", echo=False)
        yield fuzzed, other
        fuzzed.close()
        other.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inp=inputs)
def test_odd_input_gives_an_answer_or_a_typed_error(
    systems: tuple[AiOrchestration, AiOrchestration], inp: Any
) -> None:
    fuzzed, other = systems
    try:
        result = fuzzed.process(inp)
    except AiOrchestrationError:
        pass  # a typed error is a fine outcome; anything else fails the test
    else:
        assert 0.0 <= result.confidence <= 1.0
        assert fuzzed.store.get_run(result.run_id) is not None
    # an unrelated run on another instance is never the one that pays for it
    control = {"prompt": "Capital of France?", "choices": ["Paris", "Lyon"]}
    assert other.process(control).answer == "Paris"
