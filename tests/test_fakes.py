"""The fakes shipped in ai_orchestration.testing."""

from __future__ import annotations

import pytest

from ai_orchestration.testing import FunctionVoice, ScriptedVoice, SeededVoice
from ai_orchestration.voices import VoiceRequest
from ai_orchestration.workflow import WorkflowBuilder


async def test_scripted_voice_reports_calls_after_its_script_ran_out() -> None:
    once = ScriptedVoice("once", ["yes"])
    flow = WorkflowBuilder("w").consensus("vote", [once, FunctionVoice("f", lambda r: "yes")])
    await flow.build().run("q")
    # the second call fails inside the engine as a failed vote, so the run itself succeeds
    run = await flow.build().run("q")
    assert run.output.answer == "yes"
    assert {v.voice: v.ok for v in run.output.votes} == {"once": False, "f": True}
    with pytest.raises(AssertionError, match="called 1 time\\(s\\) after its script ran out"):
        once.assert_complete()


async def test_scripted_voice_unused_answers_fail_assert_complete() -> None:
    voice = ScriptedVoice("v", ["a", "b"])
    await voice.respond(VoiceRequest.from_prompt("q"))
    with pytest.raises(AssertionError, match="1 scripted answer\\(s\\) unused"):
        voice.assert_complete()
    await voice.respond(VoiceRequest.from_prompt("q"))
    voice.assert_complete()


async def test_seeded_voice_is_deterministic_and_hits_its_accuracy() -> None:
    choices = ("right", "w1", "w2", "w3")
    voice = SeededVoice("s", seed=3, accuracy=0.7, choices=choices, truth=lambda r: "right")
    answers = [(await voice.respond(VoiceRequest.from_prompt(f"q{i}"))).text for i in range(2000)]
    again = [(await voice.respond(VoiceRequest.from_prompt(f"q{i}"))).text for i in range(2000)]
    assert answers == again
    assert set(answers) == set(choices)
    assert answers.count("right") / 2000 == pytest.approx(0.7, abs=0.03)
