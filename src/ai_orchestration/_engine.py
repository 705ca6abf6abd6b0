"""Workflow execution: event-driven scheduling, join policies, cancellation, deadlines.

Each run owns one ``asyncio.TaskGroup`` per (sub-)workflow execution: every task has an owner
that awaits or cancels it, so a failing branch never leaves orphans. A step starts the moment
its join policy is satisfied; a task that finishes a step continues inline with the first
step it made ready (a chain costs no task per step), and spawns tasks for the others.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_orchestration._policy import apply_step_policies
from ai_orchestration._runtime import Budget, RunState, _scope, deadline_at
from ai_orchestration._steps import RouteOutcome, run_step_body
from ai_orchestration.engine._context import StepContext, check_completed
from ai_orchestration.engine._join import Decision, JoinState, Outcome
from ai_orchestration.errors import (
    AiOrchestrationError,
    BudgetExceededError,
    DeadlineExceededError,
    JoinError,
    StepError,
)
from ai_orchestration.tracing import (
    NoopTrace,
    RunSpanData,
    Span,
    SpanKind,
    SpanProcessor,
    SpanStatus,
    StepSpanData,
    Trace,
)
from ai_orchestration.voices import Usage
from ai_orchestration.workflow import (
    Deadline,
    FirstSuccess,
    Quorum,
    Step,
    StepKind,
    Workflow,
)

__all__ = ["RunResult", "execute", "new_run_id", "run_workflow"]

PENDING, RUNNING, OK, FAILED, SKIPPED, CANCELLED = range(6)
_OUTCOMES = {OK: Outcome.OK, FAILED: Outcome.FAILED, SKIPPED: Outcome.SKIPPED}


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class RunResult:
    """One finished run: its output, every step's output, usage and the trace."""

    output: Any
    run_id: str
    workflow: str
    trace: Trace
    usage: Usage
    voice_usage: Mapping[str, Usage]
    outputs: Mapping[str, Any]
    duration_s: float
    # Every finished execution at any depth, by step path ("review/check", "fanout[3]"):
    # what ``Workflow.run(completed=...)`` takes back to resume.
    step_outputs: Mapping[str, Any] = field(default_factory=dict)


class _Execution:
    """Scheduler state for one execution of one workflow (a run or a sub-workflow)."""

    __slots__ = (
        "arrived",
        "errors",
        "failure",
        "input",
        "joins",
        "parent",
        "prefix",
        "results",
        "state",
        "status",
        "tasks",
        "tg",
        "timers",
        "trace",
        "wf",
    )

    def __init__(
        self, wf: Workflow, inp: Any, state: RunState, parent: Span, prefix: str = ""
    ) -> None:
        self.wf = wf
        self.prefix = prefix  # this execution's steps' paths start with it ("outer/")
        self.input = inp
        self.state = state
        self.trace = state.trace
        self.parent = parent
        self.status = dict.fromkeys(wf.by_name, PENDING)
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.arrived: dict[str, list[str]] = {n: [] for n in wf.by_name}
        self.joins: dict[str, JoinState] = {}  # made when a step's first input resolves
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.failure: BaseException | None = None
        self.tg: asyncio.TaskGroup | None = None

    # --- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        ready: list[tuple[str, Any]] = []
        done, prefix = self.state.completed, self.prefix
        if done:  # resume: steps (at this depth) that finished in an earlier attempt
            finished = [n for n in self.wf.by_name if prefix + n in done]
            for name in finished:
                self.status[name] = OK
                self.results[name] = done[prefix + name]
            for name in finished:
                for c in self.wf.consumers[name]:
                    self._dep_resolved(c, name, OK, ready)
        for name in self.wf.roots:
            if self.status[name] == PENDING:
                self.status[name] = RUNNING
                ready.append((name, self.input))
        for name, inp in ready:
            self._spawn(name, inp)

    def _spawn(self, name: str, inp: Any) -> None:
        assert self.tg is not None
        self.tasks[name] = self.tg.create_task(self._drive(name, inp))

    def _arm_deadlines(self, name: str) -> None:
        for c in self.wf.consumers[name]:
            join = self.wf.by_name[c].join
            if type(join) is Deadline and c not in self.timers and self.status[c] == PENDING:
                loop = asyncio.get_running_loop()
                self.timers[c] = loop.call_later(join.seconds, self._on_deadline, c)

    # --- running ----------------------------------------------------------------------------

    async def _drive(self, name: str | None, inp: Any) -> None:
        task = asyncio.current_task()
        while name is not None:
            assert task is not None
            self.tasks[name] = task
            self._arm_deadlines(name)
            step = self.wf.by_name[name]
            try:
                value = await self._run_step(step, inp)
            except asyncio.CancelledError:
                self.status[name] = CANCELLED
                raise
            except BaseException as exc:  # recorded, propagated by join rules
                self.tasks.pop(name, None)
                name, inp = self._on_fail(name, exc)
                continue
            self.tasks.pop(name, None)
            name, inp = self._on_ok(name, value)

    async def _run_step(self, step: Step, inp: Any) -> Any:
        trace, state = self.trace, self.state
        path = self.prefix + step.name
        data = StepSpanData(step.kind, inp, path=path)
        span = trace.start_span(SpanKind.STEP, step.name, data, self.parent)
        token = _scope.set((state, span))
        end = None if step.timeout is None else asyncio.get_running_loop().time() + step.timeout
        timeout_cm = None if end is None else asyncio.timeout_at(end)
        try:
            if step.kind is StepKind.CALL and not step.policies:
                coro = step.spec(inp)  # a plain function: it needs no StepContext
            elif step.policies:
                ctx = StepContext(state, path, span, _sub_run)

                def call() -> Any:
                    return run_step_body(ctx, step, inp)

                coro = apply_step_policies(call, step.policies, step.name)()
            else:
                coro = run_step_body(StepContext(state, path, span, _sub_run), step, inp)
            if end is None or timeout_cm is None:
                value = await coro
            else:  # one end: the step's timeout and the deadline nested policies see
                with deadline_at(end):
                    async with timeout_cm:
                        value = await coro
        except asyncio.CancelledError as exc:
            trace.end_span(span, SpanStatus.CANCELLED, exc)
            raise
        except BaseException as exc:
            err = _as_step_error(step, exc, timeout_cm)
            trace.end_span(span, SpanStatus.ERROR, err)
            if err is exc:
                raise
            raise err from exc
        finally:
            _scope.reset(token)
        span.data.output = value  # type: ignore[attr-defined]
        trace.end_span(span)
        return value

    # --- completion and joins ---------------------------------------------------------------

    def _on_ok(self, name: str, value: Any) -> tuple[str | None, Any]:
        self.status[name] = OK
        self.results[name] = value  # the one place a step's output is recorded
        self.state.outputs[self.prefix + name] = value
        ready: list[tuple[str, Any]] = []
        for c in self.wf.consumers[name]:
            self._dep_resolved(c, name, OK, ready)
        return self._dispatch(ready)

    def _on_fail(self, name: str, exc: BaseException) -> tuple[str | None, Any]:
        self.status[name] = FAILED
        self.errors[name] = exc
        consumers = self.wf.consumers[name]
        if not consumers or name in self.wf.output:
            self._fail_run(exc)
            return None, None
        ready: list[tuple[str, Any]] = []
        for c in consumers:
            self._dep_resolved(c, name, FAILED, ready)
        return self._dispatch(ready)

    def _on_skip(self, name: str, reason: str) -> list[tuple[str, Any]]:
        self.status[name] = SKIPPED
        span = self.trace.start_span(
            SpanKind.STEP, name, StepSpanData(self.wf.by_name[name].kind), self.parent
        )
        span.set("skipped", reason)
        self.trace.end_span(span, SpanStatus.SKIPPED)
        self._release_deps(name)
        ready: list[tuple[str, Any]] = []
        for c in self.wf.consumers[name]:
            self._dep_resolved(c, name, SKIPPED, ready)
        return ready

    def _dispatch(self, ready: list[tuple[str, Any]]) -> tuple[str | None, Any]:
        if not ready:
            return None, None
        for name, inp in ready[1:]:
            self._spawn(name, inp)
        return ready[0]

    def _dep_resolved(self, c: str, dep: str, outcome: int, ready: list[tuple[str, Any]]) -> None:
        if self.status[c] != PENDING:
            return
        step = self.wf.by_name[c]
        if step.when is not None and step.when[0] == dep and outcome == OK:
            outcome_value = self.results[dep]
            if step.when[1] not in outcome_value.labels:
                ready.extend(self._on_skip(c, f"route {dep!r} did not choose {step.when[1]!r}"))
                return
        if outcome == OK:
            self.arrived[c].append(dep)
        join = self.joins.get(c)
        if join is None:
            join = self.joins[c] = JoinState(step.join, len(step.after))
        self._act(step, join.record(_OUTCOMES[outcome]), ready)

    def _act(self, step: Step, decision: Decision, ready: list[tuple[str, Any]]) -> None:
        if decision is Decision.READY:
            self._ready(step, ready)
        elif decision is Decision.FAILED:
            self._join_failed(step, ready, self.joins[step.name].reason)
        elif decision is Decision.SKIP:
            ready.extend(self._on_skip(step.name, "every dependency was skipped"))

    def _step_input(self, step: Step) -> Any:
        deps = step.after
        if step.when is not None:  # a route's branch gets the data the route saw
            route_out = self.results.get(step.when[0])
            if len(deps) == 1 and isinstance(route_out, RouteOutcome):
                return route_out.value
        if type(step.join) is FirstSuccess:
            return self.results[self.arrived[step.name][0]]
        if len(deps) == 1:
            value = self.results[deps[0]]
            return value.labels if isinstance(value, RouteOutcome) else value
        chosen = self.arrived[step.name]
        if type(step.join) is Quorum:
            chosen = chosen[: step.join.k]
        keep = set(chosen)
        return {d: self.results[d] for d in deps if d in keep}

    def _ready(self, step: Step, ready: list[tuple[str, Any]]) -> None:
        self.status[step.name] = RUNNING
        timer = self.timers.pop(step.name, None)
        if timer is not None:
            timer.cancel()
        ready.append((step.name, self._step_input(step)))
        self._release_deps(step.name)

    def _join_failed(self, step: Step, ready: list[tuple[str, Any]], why: str | None) -> None:
        timer = self.timers.pop(step.name, None)
        if timer is not None:
            timer.cancel()
        failed = [d for d in step.after if self.status[d] == FAILED]
        cause = self.errors[failed[-1]] if failed else None
        err: BaseException
        if why is None and cause is not None:
            err = cause  # All: the dependency's own typed error travels on
        else:
            err = JoinError(f"step {step.name!r}: join {step.join!r} failed: {why}", step=step.name)
            err.__cause__ = cause
        span = self.trace.start_span(SpanKind.STEP, step.name, StepSpanData(step.kind), self.parent)
        self.trace.end_span(span, SpanStatus.ERROR, err)
        self._release_deps(step.name)
        nxt, inp = self._on_fail(step.name, err)
        if nxt is not None:
            ready.append((nxt, inp))

    def _release_deps(self, name: str) -> None:
        """Cancel dependencies of ``name`` still running that nobody needs any more."""
        for d in self.wf.by_name[name].after:
            if self.status.get(d) != RUNNING or d in self.wf.output:
                continue
            if all(self.status[c] != PENDING for c in self.wf.consumers[d]):
                task = self.tasks.get(d)
                if task is not None and task is not asyncio.current_task():
                    task.cancel()

    def _on_deadline(self, name: str) -> None:
        self.timers.pop(name, None)
        if self.status[name] != PENDING or self.failure is not None:
            return
        step = self.wf.by_name[name]
        join = self.joins.get(name)
        if join is None:  # nothing arrived yet
            join = self.joins[name] = JoinState(step.join, len(step.after))
        ready: list[tuple[str, Any]] = []
        self._act(step, join.deadline_passed(), ready)
        for n, inp in ready:
            self._spawn(n, inp)

    def _fail_run(self, exc: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        current = asyncio.current_task()
        for name, task in list(self.tasks.items()):
            if self.status[name] == RUNNING and task is not current:
                task.cancel()

    def record_unstarted(self) -> None:
        """Give steps that were scheduled but cancelled before they began a cancelled span,
        so the trace shows every step the run set in motion."""
        for name, status in self.status.items():
            if status == RUNNING:
                self.status[name] = CANCELLED
                step = self.wf.by_name[name]
                span = self.trace.start_span(
                    SpanKind.STEP, name, StepSpanData(step.kind), self.parent
                )
                span.set("cancelled", "before it started")
                self.trace.end_span(span, SpanStatus.CANCELLED)

    def output(self) -> Any:
        outs = self.wf.output
        if len(outs) == 1:
            return self.results.get(outs[0])
        return {n: self.results.get(n) for n in outs}


def _as_step_error(
    step: Step, exc: BaseException, timeout_cm: asyncio.Timeout | None
) -> BaseException:
    if timeout_cm is not None and timeout_cm.expired() and isinstance(exc, TimeoutError):
        return DeadlineExceededError(
            f"step {step.name!r} timed out after {step.timeout}s",
            scope=step.name,
            timeout=step.timeout or 0.0,
        )
    if isinstance(exc, AiOrchestrationError) or not isinstance(exc, Exception):
        return exc
    return StepError(f"step {step.name!r} failed: {type(exc).__name__}: {exc}", step=step.name)


async def execute(
    wf: Workflow,
    inp: Any,
    state: RunState,
    parent: Span,
    *,
    prefix: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Run ``wf`` inside an existing run (used for runs and sub-workflows, whose steps'
    paths start with ``prefix``)."""
    ex = _Execution(wf, inp, state, parent, prefix)
    try:
        async with asyncio.TaskGroup() as tg:
            ex.tg = tg
            ex.start()
    finally:
        for timer in ex.timers.values():
            timer.cancel()
        ex.record_unstarted()
    if ex.failure is not None:
        if isinstance(ex.failure, BudgetExceededError) and ex.failure.partial is None:
            ex.failure.partial = dict(ex.results)
        raise ex.failure
    return ex.output(), ex.results


async def _sub_run(wf: Workflow, inp: Any, ctx: StepContext) -> Any:
    output, _ = await execute(wf, inp, ctx.state, ctx.span, prefix=ctx.path + "/")
    return output


async def run_workflow(
    wf: Workflow,
    inp: Any,
    *,
    processors: Sequence[SpanProcessor] = (),
    tracing: bool = True,
    timeout: float | None = None,
    budget: Budget | None = None,
    run_id: str | None = None,
    completed: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run ``wf`` once as a new run with its own trace; see ``Workflow.run``."""
    run_id = run_id or new_run_id()
    trace = Trace(run_id, wf.name, processors) if tracing else NoopTrace(run_id, wf.name)
    if completed:  # checked before any span or task: a bad key is the caller's error
        check_completed(completed, wf.by_name)
    state = RunState(run_id, trace, budget, completed)
    root = trace.start_span(SpanKind.RUN, wf.name, RunSpanData(wf.name, input=inp))
    for key, value in (attributes or {}).items():
        root.set(key, value)
    started = time.perf_counter()
    token = _scope.set((state, root))
    try:
        if timeout is None:
            output, outputs = await execute(wf, inp, state, root)
        else:
            try:
                with deadline_at(asyncio.get_running_loop().time() + timeout):
                    async with asyncio.timeout(timeout):
                        output, outputs = await execute(wf, inp, state, root)
            except TimeoutError as exc:
                raise DeadlineExceededError(
                    f"run {run_id} of workflow {wf.name!r} timed out after {timeout}s",
                    scope="run",
                    timeout=timeout,
                ) from exc
    except BaseException as exc:
        root.data.usage = state.usage.to_dict()  # type: ignore[attr-defined]
        status = (
            SpanStatus.CANCELLED if isinstance(exc, asyncio.CancelledError) else SpanStatus.ERROR
        )
        trace.end_span(root, status, exc)
        if isinstance(exc, AiOrchestrationError):
            exc.run_id = run_id  # type: ignore[attr-defined]
        raise
    else:
        root.data.output = output  # type: ignore[attr-defined]
        root.data.usage = state.usage.to_dict()  # type: ignore[attr-defined]
        trace.end_span(root)
    finally:
        _scope.reset(token)
        trace.finish()
    return RunResult(
        output=output,
        run_id=run_id,
        workflow=wf.name,
        trace=trace,
        usage=state.usage,
        voice_usage=state.voice_usage,
        outputs=outputs,
        step_outputs=state.outputs,
        duration_s=time.perf_counter() - started,
    )
