"""Reduced chaos run (CI): the same harness as ``benchmarks/bench_chaos.py``, fewer runs."""

from __future__ import annotations

import asyncio

import pytest
from benchmarks.bench_chaos import ChaosSettings, run_phase

from ai_orchestration._runtime import call_voice
from ai_orchestration.policies import HedgePolicy, with_policies
from ai_orchestration.testing import Faults, FaultyVoice, SeededVoice
from ai_orchestration.voices import VoiceRequest

pytestmark = pytest.mark.chaos


async def test_reduced_chaos_run_ends_every_run_typed_and_on_time() -> None:
    s = ChaosSettings(runs=120, concurrency=40, seed=3)
    clean = await run_phase(s, chaos=False)
    chaos = await run_phase(s, chaos=True)
    for tally in (clean, chaos):
        assert tally.unhandled == 0
        assert tally.orphan_tasks == 0
        assert tally.deadline_misses == 0
        # A run fails only when all its voices fail, which takes injected faults.
        assert sum(tally.typed_errors.values()) * s.voices <= tally.injected_faults
    assert clean.injected_faults == 0 and clean.results == s.runs
    assert chaos.faulty_calls > 50  # faults really were injected…
    assert chaos.untraced_faults == 0  # …and every one left a trace
    assert chaos.correct / s.runs >= clean.correct / s.runs - 0.15


async def test_hedge_launched_by_shared_timer_keeps_its_own_run(in_run: object) -> None:
    """Two runs hedge at once; each hedge's faults land on its own run's voice span."""
    hang = Faults(hang_rate=1.0)

    async def one(run_id: str) -> list[str]:
        voice = FaultyVoice(SeededVoice("v"), hang, seed=hash(run_id) % 100)
        wrapped = with_policies(voice, HedgePolicy(delay=0.001))
        with in_run(run_id) as (state, _):  # type: ignore[operator]
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await call_voice(wrapped, VoiceRequest.from_prompt("q"))
            span = state.trace.find(name="v")[0]
            assert span.run_id == run_id
            return list((span.attributes or {}).get("faults_injected", []))

    async with asyncio.TaskGroup() as tg:
        a, b = tg.create_task(one("a")), tg.create_task(one("b"))
    assert a.result() == ["hang", "hang"] and b.result() == ["hang", "hang"]
