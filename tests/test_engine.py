"""The workflow engine: scheduling, joins, map/route/loop/sub-workflows, cancellation, errors.

Ordering is asserted with events and logs, never with wall-clock thresholds; the only time
limits are generous guards that turn a would-be hang into a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ai_orchestration._runtime import Budget
from ai_orchestration.consensus import Consensus
from ai_orchestration.errors import (
    BudgetExceededError,
    DeadlineExceededError,
    InputError,
    JoinError,
    LoopLimitError,
    StepError,
    VoiceError,
)
from ai_orchestration.policies import StepCall
from ai_orchestration.testing import FunctionVoice, ScriptedVoice
from ai_orchestration.tracing import InMemorySpanProcessor, SpanKind, SpanStatus, Trace
from ai_orchestration.voices import VoiceResponse
from ai_orchestration.workflow import (
    All,
    Deadline,
    FirstSuccess,
    Quorum,
    Workflow,
    WorkflowBuilder,
)

GUARD = 10.0  # seconds; only turns a hang into a failure


async def inc(x: int) -> int:
    return x + 1


async def double(x: int) -> int:
    return 2 * x


def const(value: Any) -> Callable[[Any], Awaitable[Any]]:
    async def fn(_: Any) -> Any:
        return value

    return fn


def failing(exc: BaseException) -> Callable[[Any], Awaitable[Any]]:
    async def fn(_: Any) -> Any:
        raise exc

    return fn


class Blocker:
    """A step that blocks until released; records entry and its ``finally``."""

    def __init__(self, log: list[str], name: str, value: Any = None) -> None:
        self.log, self.name, self.value = log, name, value
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, _: Any) -> Any:
        self.log.append(f"{self.name} start")
        self.entered.set()
        try:
            await self.release.wait()
        finally:
            self.log.append(f"{self.name} finally")
        self.log.append(f"{self.name} end")
        return self.value


def step_status(trace: Trace) -> dict[str, str]:
    return {s.name: str(s.status) for s in trace.spans if s.kind is SpanKind.STEP}


def fan_out(join: Any, **branches: Callable[[Any], Awaitable[Any]]) -> Workflow:
    b = WorkflowBuilder("fan").step("src", const("x"))
    for name, fn in branches.items():
        b.step(name, fn, after="src")
    return b.step("j", _echo, after=list(branches), join=join).build()


async def _echo(x: Any) -> Any:
    return x


async def run_traced(wf: Workflow, inp: Any = None, **kw: Any) -> tuple[Any, Trace]:
    """Run and return (result or raised exception, trace) — the trace exists even on failure."""
    mem = InMemorySpanProcessor()
    try:
        async with asyncio.timeout(GUARD):
            result: Any = await wf.run(inp, processors=[mem], **kw)
    except Exception as exc:
        result = exc
    assert len(mem.traces) == 1
    return result, mem.traces[0]


# --- sequence ------------------------------------------------------------------------------------


async def test_sequence_runs_in_order_and_records_every_output() -> None:
    wf = WorkflowBuilder("seq").step("a", inc).step("b", double).step("c", inc).build()
    result = await wf.run(5, run_id="run-1")
    assert result.output == 13
    assert dict(result.outputs) == {"a": 6, "b": 12, "c": 13}
    assert (result.run_id, result.workflow) == ("run-1", "seq")
    steps = result.trace.find(SpanKind.STEP)
    assert [(s.name, s.data.input, s.data.output) for s in steps] == [  # type: ignore[attr-defined]
        ("a", 5, 6),
        ("b", 6, 12),
        ("c", 12, 13),
    ]


async def test_several_outputs_give_a_mapping() -> None:
    wf = (
        WorkflowBuilder("w")
        .step("a", inc)
        .step("b", inc)
        .step("c", double, after="a")
        .output("b", "c")
        .build()
    )
    assert (await wf.run(1)).output == {"b": 3, "c": 4}


async def test_workflow_is_reusable_across_concurrent_runs() -> None:
    wf = WorkflowBuilder("w").step("a", inc).step("b", double).build()
    results = await asyncio.gather(*(wf.run(i) for i in range(20)))
    assert [r.output for r in results] == [2 * (i + 1) for i in range(20)]
    assert len({r.run_id for r in results}) == 20


# --- fan-out and join policies -------------------------------------------------------------------


async def test_all_join_gets_every_output_by_name() -> None:
    wf = fan_out(All(), b=const(1), c=const(2), d=const(3))
    assert (await wf.run()).output == {"b": 1, "c": 2, "d": 3}


async def test_first_success_takes_the_first_success_and_cancels_the_rest() -> None:
    log: list[str] = []
    slow = Blocker(log, "slow")

    async def winner(_: Any) -> str:
        await asyncio.sleep(0)
        return "won"

    wf = fan_out(FirstSuccess(), bad=failing(ValueError("no")), good=winner, slow=slow)
    result, trace = await run_traced(wf)
    assert result.output == "won"
    assert log == ["slow start", "slow finally"]
    assert step_status(trace) == {
        "src": "ok",
        "bad": "error",
        "good": "ok",
        "slow": "cancelled",
        "j": "ok",
    }


async def test_first_success_fails_when_every_dependency_failed() -> None:
    last = RuntimeError("two")
    wf = fan_out(FirstSuccess(), b=failing(ValueError("one")), c=failing(last))
    err, trace = await run_traced(wf)
    assert isinstance(err, JoinError)
    assert err.step == "j"
    assert str(err) == "step 'j': join FirstSuccess() failed: no dependency succeeded"
    assert isinstance(err.__cause__, StepError) and err.__cause__.__cause__ is last
    assert step_status(trace)["j"] == "error"


def after_event(event: asyncio.Event, value: Any) -> Callable[[Any], Awaitable[Any]]:
    async def fn(_: Any) -> Any:
        await event.wait()
        return value

    return fn


async def test_quorum_runs_with_the_first_k_and_cancels_the_straggler() -> None:
    log: list[str] = []
    straggler = Blocker(log, "d")
    b, c = after_event(straggler.entered, "B"), after_event(straggler.entered, "C")
    wf = fan_out(Quorum(2), b=b, c=c, d=straggler)
    result, trace = await run_traced(wf)
    assert result.output == {"b": "B", "c": "C"}
    assert log == ["d start", "d finally"]
    assert step_status(trace)["d"] == "cancelled"


async def test_quorum_tolerates_failures_while_still_reachable() -> None:
    wf = fan_out(Quorum(2), b=const("B"), c=failing(ValueError("x")), d=const("D"))
    assert (await wf.run()).output == {"b": "B", "d": "D"}


async def test_unreachable_quorum_is_a_join_error() -> None:
    async def late_fail(_: Any) -> Any:
        await asyncio.sleep(0)
        raise ValueError("late")

    wf = fan_out(Quorum(2), b=const("B"), c=late_fail, d=late_fail)
    err, _ = await run_traced(wf)
    assert isinstance(err, JoinError)
    assert str(err) == "step 'j': join Quorum(k=2) failed: quorum of 2 unreachable (1 ok)"
    assert isinstance(err.__cause__, StepError)


async def test_unreachable_quorum_fails_fast_and_cancels_running_branches() -> None:
    log: list[str] = []
    c, d = Blocker(log, "c"), Blocker(log, "d")

    async def b(_: Any) -> Any:
        await c.entered.wait()
        await d.entered.wait()
        raise ValueError("b")

    wf = fan_out(Quorum(3), b=b, c=c, d=d)
    before = asyncio.all_tasks()
    err, trace = await run_traced(wf)
    assert isinstance(err, JoinError)
    assert "quorum of 3 unreachable (0 ok)" in str(err)
    assert sorted(log) == ["c finally", "c start", "d finally", "d start"]
    assert asyncio.all_tasks() == before
    assert step_status(trace) == {
        "src": "ok",
        "b": "error",
        "c": "cancelled",
        "d": "cancelled",
        "j": "error",
    }


async def test_a_step_cancelled_before_it_started_is_recorded_as_cancelled() -> None:
    log: list[str] = []
    # b finishes inline in the scheduling task before c's task ever runs; FirstSuccess then
    # cancels c, whose body never starts.
    wf = fan_out(FirstSuccess(), b=const("B"), c=Blocker(log, "c"))
    result, trace = await run_traced(wf)
    assert result.output == "B"
    assert log == []
    (span,) = trace.find(SpanKind.STEP, "c")
    assert (span.status, span.attributes) == (
        SpanStatus.CANCELLED,
        {"cancelled": "before it started"},
    )


async def test_deadline_takes_what_arrived_and_cancels_the_rest() -> None:
    log: list[str] = []
    slow = Blocker(log, "slow")
    wf = fan_out(Deadline(0.05, min_results=1), b=const(1), c=const(2), slow=slow)
    result, trace = await run_traced(wf)
    assert result.output == {"b": 1, "c": 2}
    assert log == ["slow start", "slow finally"]
    assert step_status(trace)["slow"] == "cancelled"


async def test_deadline_fails_below_min_results() -> None:
    log: list[str] = []
    wf = fan_out(
        Deadline(0.05, min_results=2), b=const(1), c=Blocker(log, "c"), d=Blocker(log, "d")
    )
    err, trace = await run_traced(wf)
    assert isinstance(err, JoinError)
    assert str(err) == (
        "step 'j': join Deadline(seconds=0.05, min_results=2) failed: "
        "deadline 0.05s passed with 1 result(s)"
    )
    assert sorted(log) == ["c finally", "c start", "d finally", "d start"]
    assert step_status(trace) == {
        "src": "ok",
        "b": "ok",
        "c": "cancelled",
        "d": "cancelled",
        "j": "error",
    }


async def test_deadline_runs_early_when_everything_arrived() -> None:
    # A 60 s deadline: finishing inside the guard proves the join did not wait for it.
    wf = fan_out(Deadline(60, min_results=2), b=const(1), c=const(2))
    async with asyncio.timeout(GUARD):
        assert (await wf.run()).output == {"b": 1, "c": 2}


async def test_deadline_with_every_dependency_failed_reports_counts() -> None:
    wf = fan_out(Deadline(60, min_results=1), b=failing(ValueError("b")))
    err, _ = await run_traced(wf)
    assert isinstance(err, JoinError)
    assert str(err).endswith("failed: 0 of 1 needed arrived")


async def test_all_join_failure_keeps_the_dependency_error() -> None:
    boom = InputError("bad thing")
    wf = fan_out(All(), b=failing(boom), c=const(1))
    err, trace = await run_traced(wf)
    assert err is boom
    assert step_status(trace)["j"] == "error"


# --- dynamic map ---------------------------------------------------------------------------------


async def test_map_keeps_input_order_whatever_the_completion_order() -> None:
    finished: list[int] = []

    async def work(x: int) -> int:
        for _ in range(x):  # larger items finish later
            await asyncio.sleep(0)
        finished.append(x)
        return x * 10

    wf = WorkflowBuilder("m").map("each", work).build()
    result = await wf.run([3, 0, 2, 1])
    assert result.output == [30, 0, 20, 10]
    assert finished == [0, 1, 2, 3]
    names = [s.name for s in result.trace.find(SpanKind.STEP)]
    assert names == ["each", "each[0]", "each[1]", "each[2]", "each[3]"]


async def test_map_respects_the_concurrency_cap() -> None:
    active = 0
    peak = 0

    async def work(x: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await asyncio.sleep(0)
        active -= 1
        return x

    wf = WorkflowBuilder("m").map("each", work, concurrency=2).build()
    assert (await wf.run(list(range(7)))).output == list(range(7))
    assert peak == 2

    unlimited = WorkflowBuilder("m").map("each", work).build()
    peak = 0
    await unlimited.run(list(range(7)))
    assert peak == 7


async def test_a_failing_item_fails_the_map_and_cancels_its_siblings() -> None:
    log: list[str] = []
    boom = ValueError("item 2 is bad")
    blockers = {i: Blocker(log, f"item{i}") for i in (0, 1, 3)}

    async def work(x: int) -> int:
        if x == 2:
            await asyncio.sleep(0)  # let the siblings start first
            raise boom
        return int(await blockers[x](x) or 0)

    wf = WorkflowBuilder("m").map("each", work).build()
    before = asyncio.all_tasks()
    err, trace = await run_traced(wf, [0, 1, 2, 3])
    assert isinstance(err, StepError)
    assert (err.step, str(err)) == ("each", "step 'each' failed: ValueError: item 2 is bad")
    assert err.__cause__ is boom
    assert sorted(log) == sorted(f"item{i} {w}" for i in (0, 1, 3) for w in ("start", "finally"))
    assert asyncio.all_tasks() == before
    assert step_status(trace) == {
        "each": "error",
        "each[0]": "cancelled",
        "each[1]": "cancelled",
        "each[2]": "error",
        "each[3]": "cancelled",
    }


async def test_map_over_a_sub_workflow_and_a_non_list_input() -> None:
    sub = WorkflowBuilder("sub").step("i", inc).step("d", double).build()
    wf = WorkflowBuilder("m").map("each", sub).build()
    assert (await wf.run([1, 2])).output == [4, 6]
    err, _ = await run_traced(wf, 5)
    assert isinstance(err, InputError)
    assert str(err) == "step 'each': map needs a list input, got int"


# --- routing -------------------------------------------------------------------------------------


def size_route() -> WorkflowBuilder:
    return (
        WorkflowBuilder("routed")
        .step("prep", inc)
        .route("r", lambda x: "big" if x > 10 else "small")
        .step("big", double, when="big", after="r")
        .step("small", inc, when="small", after="r")
        .step("merge", _echo, after=["big", "small"])
    )


async def test_route_runs_the_chosen_branch_and_records_the_other_as_skipped() -> None:
    wf = size_route().build()
    result, trace = await run_traced(wf, 20)
    assert result.output == {"big": 42}
    assert step_status(trace) == {
        "prep": "ok",
        "r": "ok",
        "big": "ok",
        "small": "skipped",
        "merge": "ok",
    }
    (skipped,) = trace.find(SpanKind.STEP, "small")
    assert skipped.attributes == {"skipped": "route 'r' did not choose 'small'"}

    result, trace = await run_traced(wf, 1)
    assert result.output == {"small": 3}
    assert step_status(trace)["big"] == "skipped"


async def test_route_to_several_branches() -> None:
    wf = (
        WorkflowBuilder("multi")
        .route("r", lambda x: ["a", "b"])
        .step("a", inc, when="a")
        .step("b", double, when="b", after="r")
        .step("c", double, when="c", after="r")
        .step("merge", _echo, after=["a", "b", "c"])
        .build()
    )
    result, trace = await run_traced(wf, 5)
    assert result.output == {"a": 6, "b": 10}
    assert step_status(trace)["c"] == "skipped"


async def test_skips_propagate_until_a_join_with_a_live_branch() -> None:
    wf = (
        size_route()
        .step("after_small", inc, after="small")
        .step("after_after", inc, after="after_small")
        .build()
    )
    result, trace = await run_traced(wf, 20)
    assert result.output == {"merge": {"big": 42}, "after_after": None}
    assert step_status(trace)["after_small"] == "skipped"
    (span,) = trace.find(SpanKind.STEP, "after_after")
    assert (span.status, span.attributes) == (
        SpanStatus.SKIPPED,
        {"skipped": "every dependency was skipped"},
    )


# --- bounded loops -------------------------------------------------------------------------------


async def test_loop_runs_until_its_condition_holds() -> None:
    wf = WorkflowBuilder("l").loop("grow", inc, until=lambda x: x >= 5, max_iterations=10).build()
    result = await wf.run(1)
    assert result.output == 5
    (span,) = result.trace.find(SpanKind.STEP, "grow")
    assert span.attributes == {"iterations": 4}
    kids = [(s.name, s.data.input, s.data.output) for s in result.trace.children(span)]  # type: ignore[attr-defined]
    assert kids == [("grow#1", 1, 2), ("grow#2", 2, 3), ("grow#3", 3, 4), ("grow#4", 4, 5)]


async def test_loop_past_its_bound_is_a_loop_limit_error() -> None:
    wf = WorkflowBuilder("l").loop("spin", inc, until=lambda x: False, max_iterations=3).build()
    err, trace = await run_traced(wf, 0)
    assert isinstance(err, LoopLimitError)
    assert (err.step, err.max_iterations) == ("spin", 3)
    assert str(err) == (
        "step 'spin': loop reached max_iterations=3 without its until() condition holding"
    )
    assert [s.name for s in trace.find(SpanKind.STEP)] == ["spin", "spin#1", "spin#2", "spin#3"]


async def test_loop_until_raising_is_a_step_error() -> None:
    def until(x: int) -> bool:
        raise KeyError("k")

    wf = WorkflowBuilder("l").loop("spin", inc, until=until, max_iterations=3).build()
    err, _ = await run_traced(wf, 0)
    assert isinstance(err, StepError)
    assert (err.step, str(err)) == ("spin", "step 'spin': until() raised KeyError: 'k'")
    assert isinstance(err.__cause__, KeyError)


# --- sub-workflows -------------------------------------------------------------------------------


async def test_sub_workflow_output_and_nested_spans() -> None:
    inner = WorkflowBuilder("inner").step("i1", inc).step("i2", double).build()
    wf = WorkflowBuilder("outer").step("a", inc).step("sub", inner).step("z", inc).build()
    result = await wf.run(1)
    assert result.output == 7  # a: 2, i1: 3, i2: 6, z: 7
    spans = {s.name: s for s in result.trace.spans}
    assert spans["i1"].parent_id == spans["sub"].span_id
    assert spans["i2"].parent_id == spans["sub"].span_id
    assert spans["sub"].parent_id == spans["outer"].span_id
    assert spans["a"].parent_id == spans["outer"].span_id


async def test_sub_workflow_failure_is_typed_and_names_the_inner_step() -> None:
    inner = WorkflowBuilder("inner").step("i1", failing(ValueError("deep"))).build()
    wf = WorkflowBuilder("outer").step("sub", inner).build()
    err, trace = await run_traced(wf, 1)
    assert isinstance(err, StepError) and err.step == "i1"
    assert step_status(trace) == {"sub": "error", "i1": "error"}


# --- cancellation --------------------------------------------------------------------------------


async def test_a_failing_branch_leaves_no_orphan_tasks() -> None:
    log: list[str] = []
    b1, b2 = Blocker(log, "b1"), Blocker(log, "b2")
    inner_block = Blocker(log, "inner")
    inner = WorkflowBuilder("inner").step("deep", inner_block).build()

    async def fail_after_others_started(_: Any) -> Any:
        await b1.entered.wait()
        await b2.entered.wait()
        await inner_block.entered.wait()
        raise ValueError("boom")

    wf = fan_out(All(), b1=b1, b2=b2, sub=inner, bad=fail_after_others_started)
    before = asyncio.all_tasks()
    err, trace = await run_traced(wf)
    assert asyncio.all_tasks() == before
    assert isinstance(err, StepError) and err.step == "bad"
    assert sorted(log) == [
        "b1 finally",
        "b1 start",
        "b2 finally",
        "b2 start",
        "inner finally",
        "inner start",
    ]
    assert step_status(trace) == {
        "src": "ok",
        "b1": "cancelled",
        "b2": "cancelled",
        "sub": "cancelled",
        "deep": "cancelled",
        "bad": "error",
        "j": "error",
    }


async def test_cancelling_the_run_cancels_every_step() -> None:
    log: list[str] = []
    blockers = [Blocker(log, f"b{i}") for i in range(3)]
    mem = InMemorySpanProcessor()
    wf = fan_out(All(), **{f"b{i}": b for i, b in enumerate(blockers)})
    before = asyncio.all_tasks()
    run = asyncio.create_task(wf.run(processors=[mem]))
    for b in blockers:
        await b.entered.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert asyncio.all_tasks() == before
    assert sorted(log) == sorted(f"b{i} {w}" for i in range(3) for w in ("start", "finally"))
    (trace,) = mem.traces
    assert trace.root is not None and trace.root.status is SpanStatus.CANCELLED
    assert step_status(trace) == {
        "src": "ok",
        "b0": "cancelled",
        "b1": "cancelled",
        "b2": "cancelled",
    }


async def test_a_slow_branch_does_not_delay_an_independent_fast_branch() -> None:
    events: list[str] = []
    release = asyncio.Event()

    async def slow(_: Any) -> str:
        events.append("slow started")
        await release.wait()  # only the fast branch's downstream step can release it
        events.append("slow done")
        return "S"

    async def fast(_: Any) -> str:
        events.append("fast done")
        return "F"

    async def fast_downstream(x: str) -> str:
        events.append("fast downstream done")
        release.set()
        return x + "!"

    wf = (
        WorkflowBuilder("w")
        .step("src", const(None))
        .step("slow", slow, after="src")
        .step("fast", fast, after="src")
        .step("fast2", fast_downstream, after="fast")
        .step("j", _echo, after=["slow", "fast2"])
        .build()
    )
    async with asyncio.timeout(GUARD):  # a super-step barrier would deadlock here
        result = await wf.run()
    assert result.output == {"slow": "S", "fast2": "F!"}
    assert events.index("fast downstream done") < events.index("slow done")


# --- timeouts ------------------------------------------------------------------------------------


async def test_step_timeout_names_the_step() -> None:
    log: list[str] = []
    wf = WorkflowBuilder("w").step("a", inc).step("stuck", Blocker(log, "stuck"), timeout=0.02)
    err, trace = await run_traced(wf.build(), 1)
    assert isinstance(err, DeadlineExceededError)
    assert (err.scope, err.timeout, str(err)) == (
        "stuck",
        0.02,
        "step 'stuck' timed out after 0.02s",
    )
    assert isinstance(err.__cause__, TimeoutError)
    assert log == ["stuck start", "stuck finally"]
    assert step_status(trace) == {"a": "ok", "stuck": "error"}


async def test_run_timeout_names_the_run() -> None:
    log: list[str] = []
    wf = WorkflowBuilder("w").step("stuck", Blocker(log, "stuck")).build()
    err, trace = await run_traced(wf, 1, timeout=0.02, run_id="r42")
    assert isinstance(err, DeadlineExceededError)
    assert (err.scope, str(err)) == ("run", "run r42 of workflow 'w' timed out after 0.02s")
    assert err.run_id == "r42"  # type: ignore[attr-defined]
    assert log == ["stuck start", "stuck finally"]
    assert trace.root is not None and trace.root.status is SpanStatus.ERROR
    assert step_status(trace) == {"stuck": "cancelled"}


async def test_workflow_level_timeout_is_the_default_run_timeout() -> None:
    log: list[str] = []
    wf = WorkflowBuilder("w", timeout=0.02).step("stuck", Blocker(log, "stuck")).build()
    err, _ = await run_traced(wf)
    assert isinstance(err, DeadlineExceededError) and err.scope == "run"


# --- step policies -------------------------------------------------------------------------------


class RecordingPolicy:
    def __init__(self, label: str, log: list[str], *, retries: int = 0) -> None:
        self.label, self.log, self.retries = label, log, retries

    async def __call__(self, call: StepCall, *, step: str) -> Any:
        for attempt in range(self.retries + 1):
            self.log.append(f"{self.label}:{step}:try{attempt}")
            try:
                value = await call()
            except StepError:
                if attempt == self.retries:
                    raise
                continue
            except Exception:
                if attempt == self.retries:
                    raise
                continue
            self.log.append(f"{self.label}:{step}:ok={value}")
            return value
        raise AssertionError("unreachable")


async def test_step_policies_wrap_the_step_outermost_first() -> None:
    log: list[str] = []
    calls = 0

    async def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("first try fails")
        return x * 100

    outer, inner = RecordingPolicy("outer", log), RecordingPolicy("inner", log, retries=1)
    wf = WorkflowBuilder("w").step("p", flaky, policies=[outer, inner]).build()
    assert (await wf.run(3)).output == 300
    assert log == [
        "outer:p:try0",
        "inner:p:try0",
        "inner:p:try1",
        "inner:p:ok=300",
        "outer:p:ok=300",
    ]


# --- resume --------------------------------------------------------------------------------------


async def test_resume_skips_completed_steps() -> None:
    ran: list[str] = []

    def tracked(name: str, fn: Callable[[int], Awaitable[int]]) -> Any:
        async def wrapper(x: int) -> int:
            ran.append(name)
            return await fn(x)

        return wrapper

    wf = (
        WorkflowBuilder("w")
        .step("a", tracked("a", inc))
        .step("b", tracked("b", double))
        .step("c", tracked("c", inc), after="a")
        .step("d", tracked("d", _echo), after=["b", "c"])
        .build()
    )
    full = await wf.run(1)
    assert (full.output, ran) == ({"b": 4, "c": 3}, ["a", "b", "c", "d"])

    ran.clear()
    resumed = await wf.run(1, completed={"a": 2, "b": 4})
    assert ran == ["c", "d"]
    assert resumed.output == full.output
    assert dict(resumed.outputs) == dict(full.outputs)
    assert [s.name for s in resumed.trace.find(SpanKind.STEP)] == ["c", "d"]


async def test_resume_with_everything_completed_runs_nothing() -> None:
    wf = WorkflowBuilder("w").step("a", failing(AssertionError("must not run"))).build()
    assert (await wf.run(1, completed={"a": 7})).output == 7


async def test_resume_with_an_unknown_step_is_an_error() -> None:
    wf = WorkflowBuilder("w").step("a", inc).build()
    with pytest.raises(StepError, match="cannot resume: unknown step 'zz'"):
        await wf.run(1, completed={"zz": 1})


# --- budget --------------------------------------------------------------------------------------


async def test_budget_exceeded_carries_the_partial_results() -> None:
    v = ScriptedVoice("v", ["one", "two", "three"])
    wf = WorkflowBuilder("w").step("s1", v).step("s2", v).step("s3", v).build()
    err, trace = await run_traced(wf, "hi", budget=Budget(max_calls=2), run_id="rb")
    assert isinstance(err, BudgetExceededError)
    assert (err.budget, err.limit, err.run_id) == ("calls", 2, "rb")  # type: ignore[attr-defined]
    assert str(err) == "run rb: voice-call budget of 2 used up"
    assert sorted(err.partial) == ["s1", "s2"]
    assert [r.text for r in err.partial.values()] == ["one", "two"]
    assert len(v.requests) == 2
    assert step_status(trace) == {"s1": "ok", "s2": "ok", "s3": "error"}


# --- errors --------------------------------------------------------------------------------------


async def test_a_typed_error_is_preserved() -> None:
    boom = LoopLimitError("custom", step="elsewhere", max_iterations=1)
    wf = WorkflowBuilder("w").step("a", inc).step("b", failing(boom)).step("c", inc).build()
    err, _ = await run_traced(wf, 1)
    assert err is boom


async def test_foreign_exceptions_become_step_errors_naming_the_step() -> None:
    boom = ZeroDivisionError("division by zero")
    wf = WorkflowBuilder("w").step("a", inc).step("divide", failing(boom)).build()
    err, trace = await run_traced(wf, 1)
    assert isinstance(err, StepError)
    assert (err.step, str(err)) == (
        "divide",
        "step 'divide' failed: ZeroDivisionError: division by zero",
    )
    assert err.__cause__ is boom
    (span,) = trace.find(SpanKind.STEP, "divide")
    assert span.error == "StepError: step 'divide' failed: ZeroDivisionError: division by zero"


# --- voices and consensus ------------------------------------------------------------------------


async def test_voice_step_and_usage() -> None:
    v = FunctionVoice("echo", lambda r: r.prompt.upper())
    wf = WorkflowBuilder("w").step("v", v).build()
    result = await wf.run("hello")
    assert isinstance(result.output, VoiceResponse) and result.output.text == "HELLO"
    assert result.usage.calls == 1 and result.voice_usage["echo"].calls == 1
    (span,) = result.trace.find(SpanKind.VOICE)
    assert (span.name, span.data.output) == ("echo", "HELLO")  # type: ignore[attr-defined]


async def test_voice_exceptions_become_voice_errors() -> None:
    def broken(_: Any) -> str:
        raise OSError("socket closed")

    wf = WorkflowBuilder("w").step("v", FunctionVoice("flaky", broken)).build()
    err, _ = await run_traced(wf, "hi")
    assert isinstance(err, VoiceError)
    assert (err.voice, str(err)) == ("flaky", "voice 'flaky': OSError: socket closed")


async def test_consensus_step_with_all_votes() -> None:
    voices = [
        FunctionVoice("a", lambda r: "yes"),
        FunctionVoice("b", lambda r: "yes"),
        FunctionVoice("c", lambda r: "no"),
    ]
    wf = WorkflowBuilder("w").consensus("vote", voices).build()
    result = await wf.run("question?")
    out = result.output
    assert isinstance(out, Consensus)
    assert (out.answer, out.agreement) == ("yes", 2 / 3)
    assert 0.5 < out.confidence < 1.0  # the exact figure is the consensus method's business
    assert sorted((v.voice, v.answer) for v in out.votes) == [
        ("a", "yes"),
        ("b", "yes"),
        ("c", "no"),
    ]


async def test_consensus_with_a_quorum_does_not_wait_for_the_straggler() -> None:
    log: list[str] = []
    stuck = Blocker(log, "stuck", value="late")

    async def stuck_voice(_: Any) -> str:
        return str(await stuck(None))

    voices = [
        FunctionVoice("a", lambda r: "yes"),
        FunctionVoice("b", lambda r: "yes"),
        FunctionVoice("stuck", stuck_voice),
    ]
    wf = WorkflowBuilder("w").consensus("vote", voices, votes=Quorum(2)).build()
    result, trace = await run_traced(wf, "q")
    assert result.output.answer == "yes"
    assert log == ["stuck start", "stuck finally"]
    (cons,) = trace.find(SpanKind.CONSENSUS)
    assert cons.data.explanation["not_awaited"] == ["stuck"]  # type: ignore[attr-defined]
    statuses = {s.name: s.status for s in trace.find(SpanKind.VOICE)}
    assert statuses == {"a": SpanStatus.OK, "b": SpanStatus.OK, "stuck": SpanStatus.CANCELLED}


async def test_consensus_records_failed_voices_as_error_votes() -> None:
    voices = [FunctionVoice("a", lambda r: "yes"), ScriptedVoice("bad", [OSError("down")])]
    wf = WorkflowBuilder("w").consensus("vote", voices).build()
    out = (await wf.run("q")).output
    assert out.answer == "yes"
    errors = {v.voice: v.error for v in out.votes}
    assert errors == {"a": None, "bad": "voice 'bad': OSError: down"}
