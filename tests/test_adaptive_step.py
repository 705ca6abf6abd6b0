"""Adaptive consensus votes: ask in waves, stop once the rest cannot change the answer."""

from __future__ import annotations

import pytest

from ai_orchestration import WorkflowError
from ai_orchestration.consensus import BayesianFusion
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


async def test_a_fitted_bayesian_fusion_decides_with_its_confusions() -> None:
    # "a" never says yes when the truth is no: C_a[yes, yes] = 22/43, C_a[no, yes] = 1/43
    # (pseudo-counts 2 and 1), so its "yes" alone gives P(yes) = 22/23 >= .95. Its one-coin
    # accuracy, (22 + 42)/86 = .744, does not: the one-coin policy goes on to ask "c".
    truth = {i: "yes" if i < 40 else "no" for i in range(80)}
    history = [{"item": i, "voice": "a", "answer": "yes" if i < 20 else "no"} for i in truth]
    history += [
        {"item": i, "voice": "c", "answer": t if i % 10 else ("no" if t == "yes" else "yes")}
        for i, t in truth.items()
    ]
    model = BayesianFusion(calibrate=False).fit(history, truth)
    asked = {}
    for name, reliability in (("confusions", model), ("one-coin", model.reliability_)):
        flow = (
            WorkflowBuilder("adaptive")
            .consensus(
                "vote",
                voices({"a": "yes", "c": "yes"}),
                votes=Adaptive(target=0.95, order="cost", cost={"a": 1.0, "c": 2.0}),
                method="bayesian",
                reliability=reliability,
            )
            .build()
        )
        run = await flow.run({"prompt": "q", "choices": ["yes", "no"]})
        assert run.output.answer == "yes"
        asked[name] = run.output.explanation["adaptive"]["asked"]
    assert asked == {"confusions": ["a"], "one-coin": ["a", "c"]}
