"""The AiOrchestration facade: process, results, store, feedback, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_orchestration import AiOrchestration, InputError, Result
from ai_orchestration.consensus import normalise
from ai_orchestration.testing import FunctionVoice, ScriptedVoice
from ai_orchestration.voices import VoiceRequest


def make(tmp_path: Path, voices: list[Any], **consensus: Any) -> AiOrchestration:
    cfg = {
        "state_dir": str(tmp_path / "state"),
        "consensus": {"method": "majority", "embed": "none", **consensus},
    }
    return AiOrchestration(cfg, voices=voices)


def fixed(name: str, answer: str) -> FunctionVoice:
    return FunctionVoice(name, lambda r: answer)


def test_process_fuses_votes_and_writes_trace(tmp_path: Path) -> None:
    system = make(tmp_path, [fixed("a", "4"), fixed("b", "4"), fixed("c", "5")])
    result = system.process("2 + 2 = ?")
    assert isinstance(result, Result)
    assert result.answer == "4"
    assert 0.5 < result.confidence <= 1.0
    assert sorted((v.voice, v.answer) for v in result.votes) == [("a", "4"), ("b", "4"), ("c", "5")]
    assert result.usage.calls == 3
    assert result.trace_path is not None and result.trace_path.exists()
    kinds = [orjson.loads(line)["kind"] for line in result.trace_path.read_bytes().splitlines()]
    assert kinds.count("voice") == 3 and kinds.count("consensus") == 1 and "run" in kinds
    system.close()


def test_run_ids_are_unique_and_recorded(tmp_path: Path) -> None:
    system = make(tmp_path, [fixed("a", "x"), fixed("b", "x")])
    ids = {system.process(f"q{i}").run_id for i in range(3)}
    assert len(ids) == 3
    record = system.store.get_run(next(iter(ids)))
    assert record is not None and record.answer == "x" and len(record.votes) == 2
    system.close()


def test_mapping_input_passes_choices_to_voices(tmp_path: Path) -> None:
    seen: list[VoiceRequest] = []

    def pick(req: VoiceRequest) -> str:
        seen.append(req)
        assert req.choices is not None
        return req.choices[1]

    system = make(tmp_path, [FunctionVoice("a", pick), FunctionVoice("b", pick)])
    result = system.process({"prompt": "pick", "choices": ["x", "y", "z"]})
    assert result.answer == "y"
    assert seen[0].choices == ("x", "y", "z") and seen[0].prompt == "pick"
    system.close()


def test_failed_voice_is_a_visible_vote_not_a_crash(tmp_path: Path) -> None:
    broken = ScriptedVoice("broken", [RuntimeError("provider exploded")])
    system = make(tmp_path, [fixed("a", "ok"), fixed("b", "ok"), broken])
    result = system.process("q")
    assert result.answer == "ok"
    failed = [v for v in result.votes if not v.ok]
    assert [v.voice for v in failed] == ["broken"]
    assert "provider exploded" in (failed[0].error or "")
    broken.assert_complete()
    system.close()


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (42, "got int"),
        ({"no": "prompt"}, "'prompt'"),
        ({"prompt": "q", "choices": "abc"}, "choices"),
        ({"prompt": "q", "choices": ["only"]}, "choices"),
        ("x" * 101, "over the limit of 100"),
    ],
)
def test_bad_input_is_a_typed_error(tmp_path: Path, bad: Any, fragment: str) -> None:
    system = AiOrchestration(
        {"state_dir": str(tmp_path), "run": {"max_input_chars": 100}},
        voices=[fixed("a", "x")],
    )
    with pytest.raises(InputError, match=fragment):
        system.process(bad)
    system.close()


def test_feedback_updates_reliability_and_persists(tmp_path: Path) -> None:
    voices = [fixed("good", "right"), fixed("bad", "wrong")]
    system = make(tmp_path, voices)
    run_ids = [system.process(f"q{i}").run_id for i in range(4)]
    for run_id in run_ids:
        system.feedback(run_id, "right")
    rel = system.tracker.reliability()
    assert rel["good"] > rel["bad"]
    system.close()
    again = make(tmp_path, voices)  # a new process would read the same state folder
    assert again.tracker.reliability() == pytest.approx(rel)
    assert again.store.get_run(run_ids[0]) is not None
    # the store keeps the same counts, written with the feedback in one transaction
    assert again.store.reliability_counts() == {"good": (4.0, 0.0), "bad": (0.0, 4.0)}
    again.close()


def test_feedback_for_unknown_run_is_an_input_error(tmp_path: Path) -> None:
    system = make(tmp_path, [fixed("a", "x")])
    with pytest.raises(InputError, match="unknown run id 'nope'"):
        system.feedback("nope", "x")
    system.close()


async def test_aprocess_inside_a_running_loop(tmp_path: Path) -> None:
    system = make(tmp_path, [fixed("a", "x"), fixed("b", "x")])
    results = await asyncio.gather(*(system.aprocess(f"q{i}") for i in range(5)))
    assert {r.answer for r in results} == {"x"}
    assert len({r.run_id for r in results}) == 5
    system.close()


def test_process_from_inside_a_running_loop_uses_the_bridge(tmp_path: Path) -> None:
    system = make(tmp_path, [fixed("a", "x")])

    async def caller() -> str:
        return str(system.process("q").answer)  # sync facade called from async code

    with pytest.warns(RuntimeWarning, match=r"blocks the running event loop.*aprocess") as seen:
        assert asyncio.run(caller()) == "x"
        assert asyncio.run(caller()) == "x"
    assert len(seen) == 1  # warned once, pointing to aprocess
    system.close()


def test_policies_config_wraps_voices(tmp_path: Path) -> None:
    from ai_orchestration import ProviderUnavailableError

    flaky = ScriptedVoice("flaky", [ProviderUnavailableError("503", voice="flaky"), "ok"])
    system = AiOrchestration(
        {
            "state_dir": str(tmp_path),
            "consensus": {"method": "majority", "embed": "none"},
            "policies": {"voices": {"flaky": {"retry": {"max_attempts": 2, "base_delay": 0.001}}}},
        },
        voices=[flaky],
    )
    assert system.process("q").answer == "ok"
    flaky.assert_complete()
    system.close()


def test_policies_naming_an_unknown_voice_fail_at_construction(tmp_path: Path) -> None:
    from ai_orchestration import ConfigError

    with pytest.raises(ConfigError, match="ghost"):
        AiOrchestration(
            {"state_dir": str(tmp_path), "policies": {"voices": {"ghost": {}}}},
            voices=[fixed("a", "x")],
        )


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("c.yaml", "policies:\n  defaults:\n    retry:\n      max_attempts: -1\n", 4),
        ("c.toml", "[policies.defaults.retry]\nmax_attempts = -1\n", 2),
    ],
)
def test_policy_errors_from_a_config_file_name_file_and_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    from ai_orchestration import ConfigError

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        AiOrchestration(path, voices=[fixed("a", "x")])
    assert (info.value.file, info.value.line) == (str(path), line)
    assert info.value.field == "policies.defaults.retry.max_attempts"


def test_policies_budget_is_applied(tmp_path: Path) -> None:
    from ai_orchestration import BudgetExceededError

    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "policies": {"budget": {"max_calls": 1}},
    }
    system = AiOrchestration(cfg, voices=[fixed("a", "x"), fixed("b", "x")])
    with pytest.raises(BudgetExceededError, match="voice-call budget of 1"):
        system.process("q")
    system.close()


def test_a_budget_in_two_places_is_a_config_error(tmp_path: Path) -> None:
    from ai_orchestration import ConfigError

    cfg = {
        "state_dir": str(tmp_path),
        "budget": {"max_calls": 5},
        "policies": {"budget": {"max_calls": 1}},
    }
    with pytest.raises(ConfigError, match=r"both in \[budget\] and in \[policies\.budget\]"):
        AiOrchestration(cfg, voices=[fixed("a", "x")])


@pytest.mark.llm
def test_default_voices_on_free_text_the_embedding_voice_selects_among_answers(
    tmp_path: Path,
) -> None:
    system = AiOrchestration({"state_dir": str(tmp_path)})
    results = [system.process(q) for q in ("What is the capital of Japan?", "Who wrote Hamlet?")]
    system.close()
    for result in results:
        votes = {v.voice: v for v in result.votes}
        assert sorted(votes) == ["e5-similarity", "gemma-qa", "smollm2-qa"]
        assert votes["gemma-qa"].ok and votes["smollm2-qa"].ok
        (candidates,) = result.consensus.explanation["selection"].values()
        assert set(candidates) <= {votes["gemma-qa"].answer, votes["smollm2-qa"].answer}
        e5 = votes["e5-similarity"]
        agree = normalise(votes["gemma-qa"].answer) == normalise(votes["smollm2-qa"].answer)
        if not agree and candidates:  # they disagree: e5 picks one of their answers
            assert e5.ok and e5.answer in candidates  # (one that does not echo the question)
        elif agree:  # they agree: nothing to choose, and an echo would inflate the confidence
            assert e5.error is not None and "nothing to select" in e5.error
        else:  # both answers echo the question
            assert e5.error is not None and "only repeats" in e5.error
