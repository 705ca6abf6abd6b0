"""Adaptive consensus votes: ask in waves, stop once the rest cannot change the answer."""

from __future__ import annotations

import pytest

from ai_orchestration import WorkflowError
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.workflow import Adaptive, WorkflowBuilder


def voices(answers: dict[str, str]) -> list[FunctionVoice]:
    return [FunctionVoice(n, lambda r, a=a: a) for n, a in answers.items()]


async def test_stops_early_when_reliable_voices_agree() -> None:
    vs = voices({"a": "yes", "b": "yes", "c": "yes", "d": "no", "e": "yes"})
    reliability = {"a": 0.95, "b": 0.95, "c": 0.6, "d": 0.6, "e": 0.6}
    cost = {"a": 1.0, "b": 1.0, "c": 2.0, "d": 2.0, "e": 2.0}
    flow = (
        WorkflowBuilder("adaptive")
        .consensus(
            "vote",
            vs,
            votes=Adaptive(target=0.95, order="cost", cost=cost),
            reliability=reliability,
        )
        .build()
    )
    run = await flow.run({"prompt": "q", "choices": ["yes", "no"]})
    report = run.output.explanation["adaptive"]
    assert run.output.answer == "yes"
    # a and b (p=0.95, log-odds 2.944 each, posterior 0.997 > 0.95) settle it: c, d, e not asked
    assert report["asked"] == ["a", "b"]
    assert report["not_asked"] == ["c", "d", "e"]
    assert (report["calls_saved"], report["cost_saved"]) == (3, 6.0)
    assert sum(v.calls for v in vs) == 2
    assert run.usage.calls == 2


async def test_keeps_asking_while_voices_disagree() -> None:
    vs = voices({"a": "yes", "b": "no", "c": "yes"})
    flow = WorkflowBuilder("adaptive").consensus("vote", vs, votes=Adaptive(target=0.99)).build()
    run = await flow.run({"prompt": "q", "choices": ["yes", "no"]})
    assert run.output.explanation["adaptive"]["not_asked"] == []
    assert run.output.answer == "yes"


def test_bad_adaptive_settings_are_workflow_errors() -> None:
    with pytest.raises(WorkflowError) as info:
        WorkflowBuilder("bad").consensus(
            "vote", voices({"a": "x"}), votes=Adaptive(target=1.5, wave=0, order="random")
        ).build()
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "Adaptive(target=1.5) must be in [0.5, 1)",
        "Adaptive(wave=0) must be >= 1",
        "Adaptive(order='random') must be cost or value",
    ]
