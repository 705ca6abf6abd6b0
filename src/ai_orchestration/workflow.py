"""Workflow definitions: an immutable, validated graph of named async steps.

Build with :class:`WorkflowBuilder`; ``build()`` validates everything at once and raises one
:class:`~ai_orchestration.errors.WorkflowError` listing every problem by step name. Running is
the engine's job (``await workflow.run(input)``); this module never executes a step.

>>> async def double(x: int) -> int:
...     return 2 * x
>>> flow = WorkflowBuilder("demo").step("a", double).step("b", double).build()
>>> [s.name for s in flow.steps]
['a', 'b']

A step runs as soon as its dependencies allow — there is no super-step barrier. A step with
several dependencies joins them with a join policy: :class:`All` (default),
:class:`FirstSuccess`, :class:`Quorum` (k of n) or :class:`Deadline` (take what arrived).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, get_origin, get_type_hints

from ai_orchestration._policy import StepPolicy
from ai_orchestration.errors import WorkflowError
from ai_orchestration.voices import Voice

if TYPE_CHECKING:
    from ai_orchestration._engine import RunResult
    from ai_orchestration._runtime import Budget
    from ai_orchestration.tracing import SpanProcessor

__all__ = [
    "Adaptive",
    "All",
    "ConsensusSpec",
    "Deadline",
    "FirstSuccess",
    "JoinPolicy",
    "LoopSpec",
    "MapSpec",
    "Quorum",
    "Step",
    "StepKind",
    "Workflow",
    "WorkflowBuilder",
    "declared_types",
]

StepFn = Callable[[Any], Awaitable[Any]]
_PREVIOUS: Any = object()  # sentinel: "after the previously added step"


# --- join policies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    """Wait for every dependency; the step gets ``{dep: output}`` (one dep: its output)."""


@dataclass(frozen=True, slots=True)
class FirstSuccess:
    """Run as soon as one dependency succeeds, with that output; cancel the rest."""


@dataclass(frozen=True, slots=True)
class Quorum:
    """Run once ``k`` dependencies succeeded, with ``{dep: output}`` of those k."""

    k: int


@dataclass(frozen=True, slots=True)
class Deadline:
    """Run after ``seconds`` (or earlier if all arrived) with what arrived; needs
    ``min_results`` successes by then, else the join fails."""

    seconds: float
    min_results: int = 1


JoinPolicy = All | FirstSuccess | Quorum | Deadline


@dataclass(frozen=True, slots=True)
class Adaptive:
    """Consensus votes only: ask voices in waves of ``wave`` (cheapest or most informative
    first, by ``order``), stop once the leader's posterior reaches ``target`` or the voices
    not yet asked can no longer change the outcome. ``cost`` maps voice → cost per call."""

    target: float = 0.95
    wave: int = 1
    order: str = "value"
    cost: Mapping[str, float] = field(default_factory=dict)


class StepKind(StrEnum):
    CALL = "call"
    VOICE = "voice"
    CONSENSUS = "consensus"
    MAP = "map"
    ROUTE = "route"
    LOOP = "loop"
    WORKFLOW = "workflow"
    AGENTS = "agents"


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step. ``spec`` holds the kind-specific definition (function, voice,
    sub-workflow, consensus settings…); the engine interprets it."""

    name: str
    kind: StepKind
    spec: Any
    after: tuple[str, ...]
    join: JoinPolicy = All()
    when: tuple[str, str] | None = None
    timeout: float | None = None
    policies: tuple[StepPolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class LoopSpec:
    body: StepFn | Workflow
    until: Callable[[Any], bool]
    max_iterations: int


@dataclass(frozen=True, slots=True)
class MapSpec:
    fn: StepFn | Workflow
    concurrency: int | None


@dataclass(frozen=True, slots=True)
class ConsensusSpec:
    voices: tuple[Voice, ...]
    method: str
    join: JoinPolicy | Adaptive
    options: Mapping[str, Any] = field(default_factory=dict)


# --- the immutable definition ----------------------------------------------------------------


@dataclass(frozen=True)
class Workflow:
    """An immutable, validated workflow. Run it with ``await workflow.run(input)``.

    Built by :class:`WorkflowBuilder`, or directly from steps; either way it is validated
    when constructed (a :class:`WorkflowError` lists every problem), never a silent no-op.
    """

    name: str
    steps: tuple[Step, ...]
    output: tuple[str, ...]
    timeout: float | None = None
    # Derived indexes (computed on construction; the engine reads them on every run).
    by_name: Mapping[str, Step] = field(init=False, repr=False, compare=False)
    consumers: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    roots: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _problems(self.name, self.steps, self.output, self.timeout)
        if problems:
            raise WorkflowError(self.name, problems)
        steps = tuple(self.steps)
        consumers: dict[str, list[str]] = {s.name: [] for s in steps}
        for s in steps:
            for dep in s.after:
                consumers[dep].append(s.name)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "output", tuple(self.output))
        object.__setattr__(self, "by_name", {s.name: s for s in steps})
        object.__setattr__(self, "consumers", {k: tuple(v) for k, v in consumers.items()})
        object.__setattr__(self, "roots", tuple(s.name for s in steps if not s.after))

    async def run(
        self,
        input: Any = None,
        *,
        processors: Sequence[SpanProcessor] = (),
        tracing: bool = True,
        timeout: float | None = None,
        budget: Budget | None = None,
        run_id: str | None = None,
        completed: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run once. ``completed`` maps step names to outputs already produced (resume);
        ``attributes`` are recorded on the run's span (e.g. the routing decision)."""
        from ai_orchestration._engine import run_workflow

        return await run_workflow(
            self,
            input,
            processors=processors,
            tracing=tracing,
            timeout=timeout if timeout is not None else self.timeout,
            budget=budget,
            run_id=run_id,
            completed=completed,
            attributes=attributes,
        )


# --- the builder -----------------------------------------------------------------------------


class WorkflowBuilder:
    """Collects steps; ``build()`` validates and returns an immutable :class:`Workflow`.

    ``after`` defaults to the previously added step, so a chain is just successive ``step``
    calls; pass ``after=()`` for another root step or a list of names to join several.
    """

    def __init__(self, name: str, *, timeout: float | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self._steps: list[Step] = []
        self._output: tuple[str, ...] | None = None
        self._problems: list[str] = []

    def _after(self, after: Any) -> tuple[str, ...]:
        if after is _PREVIOUS:
            return (self._steps[-1].name,) if self._steps else ()
        if isinstance(after, str):
            return (after,)
        return tuple(after)

    def _add(self, name: str, kind: StepKind, spec: Any, after: Any, **kw: Any) -> WorkflowBuilder:
        deps = self._after(after)
        when = kw.pop("when", None)
        if isinstance(when, str):  # shorthand: the route is the (single) dependency
            if len(deps) == 1:
                when = (deps[0], when)
            else:
                self._problems.append(
                    f"step {name!r}: when={when!r} needs exactly one dependency (the route step)"
                    " or an explicit (route, label) pair"
                )
                when = None
        if when is not None and when[0] not in deps:
            deps = (*deps, when[0])
        self._steps.append(Step(name, kind, spec, deps, when=when, **kw))
        return self

    def step(
        self,
        name: str,
        fn: StepFn | Voice | Workflow,
        *,
        after: str | Sequence[str] = _PREVIOUS,
        join: JoinPolicy = All(),
        when: str | tuple[str, str] | None = None,
        timeout: float | None = None,
        policies: Sequence[StepPolicy] = (),
    ) -> WorkflowBuilder:
        """Add an async function, a voice, or a sub-workflow as a step."""
        if isinstance(fn, Workflow):
            kind = StepKind.WORKFLOW
        elif isinstance(fn, Voice) and not inspect.iscoroutinefunction(fn):
            kind = StepKind.VOICE
        else:
            kind = StepKind.CALL
        return self._add(
            name, kind, fn, after, join=join, when=when, timeout=timeout, policies=tuple(policies)
        )

    def consensus(
        self,
        name: str,
        voices: Sequence[Voice],
        *,
        method: str = "majority",
        votes: JoinPolicy | Adaptive = All(),
        after: str | Sequence[str] = _PREVIOUS,
        when: str | tuple[str, str] | None = None,
        timeout: float | None = None,
        policies: Sequence[StepPolicy] = (),
        **options: Any,
    ) -> WorkflowBuilder:
        """Ask the voices concurrently, collect votes under the ``votes`` policy (all, quorum,
        deadline… or ``Adaptive`` waves), and fuse them with ``method``. Output: ``Consensus``.
        On input without ``choices``, voices that only pick among answers are asked after the
        others, choosing among their distinct answers (abstaining when there is only one)."""
        spec = ConsensusSpec(tuple(voices), method, votes, dict(options))
        return self._add(
            name,
            StepKind.CONSENSUS,
            spec,
            after,
            when=when,
            timeout=timeout,
            policies=tuple(policies),
        )

    def map(
        self,
        name: str,
        fn: StepFn | Workflow,
        *,
        after: str | Sequence[str] = _PREVIOUS,
        concurrency: int | None = None,
        when: str | tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> WorkflowBuilder:
        """Apply ``fn`` to every item of the input list concurrently; output keeps order."""
        return self._add(
            name, StepKind.MAP, MapSpec(fn, concurrency), after, when=when, timeout=timeout
        )

    def route(
        self,
        name: str,
        choose: Callable[[Any], str | Sequence[str]],
        *,
        after: str | Sequence[str] = _PREVIOUS,
        when: str | tuple[str, str] | None = None,
    ) -> WorkflowBuilder:
        """A synchronous decision: returns the label(s) of branches to take. Branch steps
        declare ``when="label"`` and receive the route step's *input*."""
        return self._add(name, StepKind.ROUTE, choose, after, when=when)

    def loop(
        self,
        name: str,
        body: StepFn | Workflow,
        *,
        until: Callable[[Any], bool],
        max_iterations: int,
        after: str | Sequence[str] = _PREVIOUS,
        when: str | tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> WorkflowBuilder:
        """Feed ``body`` its own output until ``until(output)``; more than ``max_iterations``
        iterations raises ``LoopLimitError`` (loops are always bounded)."""
        spec = LoopSpec(body, until, max_iterations)
        return self._add(name, StepKind.LOOP, spec, after, when=when, timeout=timeout)

    def add(self, step: Step) -> WorkflowBuilder:
        """Add a pre-built step (used by agents and extensions)."""
        self._steps.append(step)
        return self

    def output(self, *names: str) -> WorkflowBuilder:
        """Name the step(s) whose output is the run's output (default: the sink steps)."""
        self._output = names
        return self

    def build(self) -> Workflow:
        steps = tuple(self._steps)
        if self._output is not None:
            output = self._output
        else:  # the sinks: steps nobody consumes
            consumed = {dep for s in steps for dep in s.after}
            output = tuple(s.name for s in steps if s.name not in consumed)
        problems = self._problems + _problems(self.name, steps, output, self.timeout)
        if problems:
            raise WorkflowError(self.name, problems)
        return Workflow(self.name, steps, output, self.timeout)


def _problems(
    name: str, steps: Sequence[Step], output: Sequence[str], timeout: float | None
) -> list[str]:
    """Every problem of a workflow definition, by step name (empty: it is valid)."""
    from ai_orchestration._validate import validate

    if isinstance(steps, Step | str) or not all(isinstance(s, Step) for s in steps):
        return ["steps must be a sequence of Step objects"]
    problems: list[str] = []
    by_name: dict[str, Step] = {}
    for s in steps:
        if s.name in by_name:
            problems.append(f"step {s.name!r} is defined twice")
        by_name[s.name] = s
    problems += validate(tuple(steps), by_name, tuple(output))
    if timeout is not None and timeout <= 0:
        problems.append(f"workflow timeout must be > 0, got {timeout}")
    return problems


def declared_types(fn: Any) -> tuple[type | None, type | None]:
    """(first-parameter type, return type) of ``fn`` when both are plain classes, else None."""
    target = fn.__call__ if not inspect.isfunction(fn) and callable(fn) else fn
    try:
        hints = get_type_hints(target)
        params = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    except Exception:  # unresolvable annotations: nothing to check
        return None, None

    def plain(t: Any) -> type | None:
        if t is None or t is Any or get_origin(t) is not None or not isinstance(t, type):
            return None
        return t

    first = plain(hints.get(params[0].name)) if params else None
    ret = hints.get("return")
    if get_origin(ret) is not None and getattr(ret, "__name__", "") in {"Awaitable", "Coroutine"}:
        ret = None
    return first, plain(ret)
