"""Resilience defaults: a hung voice costs its own timeout, a run deadline keeps the votes in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration import AiOrchestration, ConsensusError, DeadlineExceededError
from ai_orchestration.testing import FunctionVoice


def _system(tmp_path: Path, voices: list[Any], **sections: Any) -> AiOrchestration:
    cfg: dict[str, Any] = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none", **sections.pop("consensus", {})},
        **sections,
    }
    return AiOrchestration(cfg, voices=voices)


def _fast(name: str) -> FunctionVoice:
    return FunctionVoice(name, lambda r: "Paris")


def _hung(name: str) -> FunctionVoice:
    return FunctionVoice(name, lambda r: "Lyon", delay=30.0)


def test_a_hung_voice_costs_a_quarter_of_the_run_timeout_not_the_run(tmp_path: Path) -> None:
    voices = [_fast("a"), _fast("b"), _hung("hung")]
    with _system(tmp_path, voices, run={"timeout": 2.0}) as system:
        started = time.perf_counter()
        result = system.process("Capital of France?")
        elapsed = time.perf_counter() - started
    assert result.answer == "Paris" and not result.partial
    hung = next(v for v in result.votes if v.voice == "hung")
    assert hung.error == "voice 'hung': no answer within 0.5s"  # default: timeout / 4
    assert elapsed < 1.5  # the 0.5 s voice limit, not the 2 s run timeout


def test_a_run_deadline_returns_the_votes_in_as_a_partial_consensus(tmp_path: Path) -> None:
    voices = [_fast("a"), _fast("b"), _hung("slow")]
    run = {"timeout": 1.0, "voice_timeout": 20.0}
    with _system(tmp_path, voices, run=run) as system:
        result = system.process("Capital of France?")
        assert result.answer == "Paris" and result.partial
        assert result.consensus.explanation["partial"] == {
            "reason": "deadline",
            "not_awaited": ["slow"],
        }
        assert result.to_dict()["partial"] is True
        assert system.store.get_run(result.run_id) is not None


def test_partial_consensus_can_be_switched_off(tmp_path: Path) -> None:
    voices = [_fast("a"), _fast("b"), _hung("slow")]
    run = {"timeout": 0.5, "voice_timeout": 20.0}
    system = _system(tmp_path, voices, run=run, consensus={"partial_on_timeout": False})
    with system, pytest.raises(DeadlineExceededError, match=r"timed out after 0\.5s") as info:
        system.process("Capital of France?")
    assert str(info.value).endswith(
        ":\n  a: answered\n  b: answered\n  slow: no answer before the deadline"
    )


def test_too_few_votes_at_the_deadline_say_who_answered_and_who_held_it(tmp_path: Path) -> None:
    voices = [_fast("a"), _hung("slow1"), _hung("slow2")]
    run = {"timeout": 0.5, "voice_timeout": 20.0}
    system = _system(tmp_path, voices, run=run, consensus={"min_votes": 2})
    with system, pytest.raises(ConsensusError) as info:
        system.process("Capital of France?")
    assert str(info.value) == (
        "quorum not met: 1 valid vote(s) of 1, 2 required:\n"
        "  a: answered\n"
        "  slow1: no answer before the deadline\n"
        "  slow2: no answer before the deadline"
    )
