"""Step paths name every execution of a step at any depth; a run resumes at any depth."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ai_orchestration.errors import StepError
from ai_orchestration.tracing import InMemorySpanProcessor, SpanKind
from ai_orchestration.workflow import Workflow, WorkflowBuilder

calls: Counter[str] = Counter()


def counted(name: str, fn: Any) -> Any:
    async def step(x: Any) -> Any:
        calls[name] += 1
        return fn(x)

    step.__qualname__ = name
    return step


def build() -> Workflow:
    """start → review (sub-workflow: check → polish) → fan (map of a sub-workflow) → refine."""
    review = (
        WorkflowBuilder("review")
        .step("check", counted("check", lambda x: x + 1))
        .step("polish", counted("polish", lambda x: x * 10))
        .build()
    )
    item = WorkflowBuilder("item").step("inner", counted("inner", lambda x: x + 100)).build()
    return (
        WorkflowBuilder("outer")
        .step("start", counted("start", lambda x: x))
        .step("review", review)
        .step("split", counted("split", lambda x: [x, x + 1, x + 2]))
        .map("fan", item)
        .step("total", counted("total", sum))
        .loop("refine", counted("refine", lambda x: x + 1), until=lambda x: x % 3 == 0,
              max_iterations=5)
        .build()
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    calls.clear()


async def test_every_execution_has_a_stable_path() -> None:
    mem = InMemorySpanProcessor()
    result = await build().run(1, processors=[mem])
    # 1 → review: (1+1)*10 = 20 → [20, 21, 22] → +100 each → 363 → refine to 366 (3 iterations)
    assert result.output == 366
    assert result.step_outputs == {
        "start": 1,
        "review/check": 2,
        "review/polish": 20,
        "review": 20,
        "split": [20, 21, 22],
        "fan[0]/inner": 120,
        "fan[1]/inner": 121,
        "fan[2]/inner": 122,
        "fan[0]": 120,
        "fan[1]": 121,
        "fan[2]": 122,
        "fan": [120, 121, 122],
        "total": 363,
        "refine#1": 364,
        "refine#2": 365,
        "refine#3": 366,
        "refine": 366,
    }
    paths = {s.data.path for s in mem.ended if s.kind is SpanKind.STEP}
    assert paths == set(result.step_outputs)


async def test_resume_takes_completed_executions_at_any_depth() -> None:
    completed = {"start": 1, "review/check": 5, "split": [50, 51, 52], "fan[1]": 999}
    result = await build().run(1, completed=completed)
    # check is not re-run: polish gets its recorded 5; fan item 1 is not re-run either
    assert result.step_outputs["review"] == 50
    assert result.step_outputs["fan"] == [150, 999, 152]
    assert calls == Counter({"polish": 1, "inner": 2, "total": 1, "refine": 1})
    assert result.output == 1302  # 150 + 999 + 152 = 1301 → refine once to 1302


async def test_resuming_from_a_whole_record_reruns_nothing() -> None:
    first = await build().run(1)
    calls.clear()
    again = await build().run(1, completed=first.step_outputs)
    assert again.output == first.output and not calls


async def test_a_loop_resumes_after_its_last_recorded_iteration() -> None:
    result = await build().run(1, completed={"total": 363, "refine#1": 364})
    assert calls["refine"] == 2 and result.output == 366


async def test_an_unknown_path_is_refused_before_anything_runs() -> None:
    with pytest.raises(StepError, match=r"cannot resume: unknown step 'ghost/check'"):
        await build().run(1, completed={"ghost/check": 1})
    assert not calls
