"""Inputs the voices cannot take: context sizes, choice limits, element checks, `run` defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, InputError
from ai_orchestration._steps import ABSTAINED
from ai_orchestration.cli import app
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import LlamaCppVoice


class SmallVoice(FunctionVoice):
    """A fake voice with a declared context size."""

    def __init__(self, name: str, context_tokens: int) -> None:
        super().__init__(name, lambda r: "Paris")
        self.context_tokens = context_tokens


def _system(tmp_path: Path, voices: list[Any], **run: Any) -> AiOrchestration:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "run": run,
    }
    return AiOrchestration(cfg, voices=voices)


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([None, "Lyon"], "input['choices'][0] is NoneType; options are strings or numbers"),
        ([["Paris"], "Lyon"], "input['choices'][0] is list; options are strings or numbers"),
        (["Paris", {"x": 1}], "input['choices'][1] is dict; options are strings or numbers"),
        (["Paris", "  "], "input['choices'][1] is an empty option"),
        (["Paris", "Lyon", "Paris"], "input['choices'][2] repeats option 0 ('Paris')"),
        (["Paris", float("nan")], "input['choices'][1] is nan, not an option"),
        ([str(i) for i in range(65)], "input has 65 choices, over the limit of 64"),
    ],
)
def test_choices_are_checked_element_by_element(
    tmp_path: Path, choices: list[Any], message: str
) -> None:
    voice = FunctionVoice("a", lambda r: "Paris")
    with _system(tmp_path, [voice, FunctionVoice("b", lambda r: "Paris")]) as system:
        with pytest.raises(InputError) as info:
            system.process({"prompt": "Capital of France?", "choices": choices})
        assert str(info.value).startswith(message)
        assert voice.calls == 0
        numbers = system.process({"prompt": "2 + 2 = ?", "choices": [3, 4]})
        assert numbers.answer == "Paris"  # numbers are options (the fake ignores them)


def test_choices_count_towards_the_input_limit(tmp_path: Path) -> None:
    system = _system(tmp_path, [FunctionVoice("a", lambda r: "x")], max_input_chars=100)
    with system, pytest.raises(InputError, match=r"prompt and choices\) is 110 characters"):
        system.process({"prompt": "q" * 10, "choices": ["a" * 50, "b" * 50]})


def test_input_over_every_voice_context_is_an_input_error_naming_them(tmp_path: Path) -> None:
    voices = [SmallVoice("small", 100), SmallVoice("tiny", 50)]
    with _system(tmp_path, voices) as system, pytest.raises(InputError) as info:
        system.process("x" * 800)  # ~201 tokens
    assert str(info.value) == (
        "the input is ~201 tokens, more than any voice can take "
        "(context tokens: small 100, tiny 50); shorten it"
    )
    assert voices[0].calls == voices[1].calls == 0


def test_a_voice_the_input_is_too_long_for_abstains_with_the_reason(tmp_path: Path) -> None:
    voices = [SmallVoice("small", 100), FunctionVoice("big", lambda r: "Paris")]
    with _system(tmp_path, voices) as system:
        result = system.process("x" * 800)
    small = next(v for v in result.votes if v.voice == "small")
    assert small.error == ABSTAINED + (
        "the input is ~201 tokens, over this voice's context of 100 tokens"
    )
    assert voices[0].calls == 0 and result.answer == "Paris"
    assert small.abstained and small.to_dict()["abstained"] is True  # a typed field, not a prefix


def test_a_configured_voice_declares_its_context(tmp_path: Path) -> None:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"embed": "none"},
        "voices": [
            {"spec": "openai-compat:gemma@http://127.0.0.1:9/v1", "context_tokens": 16},
        ],
    }
    refused = pytest.raises(InputError, match=r"\(context tokens: openai-compat:gemma 16\)")
    with AiOrchestration(cfg) as system, refused:
        system.process("a question of some two hundred characters " * 5)  # no call is made


def test_local_models_declare_their_context() -> None:
    voice = LlamaCppVoice("gemma-qa")  # nothing is loaded
    # 1024 positions, 32 for the answer, the few-shot prefix (220 characters) at ~3 a token
    assert voice.context_tokens == 1024 - 32 - 220 // 3


def test_run_has_an_input_limit(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: echo\nsteps:\n  - {name: echo, call: 'tests.fixtures.steps:shout'}\n")
    big = tmp_path / "big.txt"
    big.write_text("x" * 100_001)
    out = CliRunner().invoke(app, ["run", str(flow), "--input", f"@{big}"])
    assert out.exit_code == 2
    assert "100,001 characters, over the limit of 100,000" in out.output
    ok = CliRunner().invoke(app, ["run", str(flow), "--input", "hello", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["output"] == "HELLO"


def test_the_default_voices_refuse_a_prompt_over_their_context(tmp_path: Path) -> None:
    # The case: 11,000 characters against the 1,024-token local models. Nothing is
    # loaded or run: the input is refused at the boundary, naming every voice. 11,000 / 4 + 1
    # tokens; Gemma and SmolLM2 1024 - 32 - prefix // 3 (220 characters, the same prompt);
    # e5 500.
    system = AiOrchestration({"state_dir": str(tmp_path)})
    with system, pytest.raises(InputError) as info:
        system.process("word " * 2200)
    assert str(info.value) == (
        "the input is ~2,751 tokens, more than any voice can take (context tokens: "
        "gemma-qa 919, smollm2-qa 919, e5-similarity 500); shorten it"
    )
