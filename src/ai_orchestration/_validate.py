"""Workflow validation: every problem found, by step name, before any run."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ai_orchestration.workflow import (
    Adaptive,
    ConsensusSpec,
    Deadline,
    LoopSpec,
    MapSpec,
    Quorum,
    Step,
    StepKind,
    Workflow,
    declared_types,
)

__all__ = ["validate"]


def _is_async_callable(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - async callable objects are fine too
    return call is not None and inspect.iscoroutinefunction(call)


def _describe(fn: Any) -> str:
    """A stable name for ``fn`` in messages (no memory addresses)."""
    name = getattr(fn, "__qualname__", None)
    return repr(name) if isinstance(name, str) else f"a {type(fn).__name__} object"


def _check_graph(steps: Sequence[Step], by_name: Mapping[str, Step]) -> list[str]:
    problems = []
    for s in steps:
        for dep in s.after:
            if dep not in by_name:
                problems.append(f"step {s.name!r} depends on unknown step {dep!r}")
            elif dep == s.name:
                problems.append(f"step {s.name!r} depends on itself")
        if s.when is not None:
            route = by_name.get(s.when[0])
            if route is not None and route.kind is not StepKind.ROUTE:
                problems.append(
                    f"step {s.name!r}: when={s.when[1]!r} refers to {s.when[0]!r}, "
                    "which is not a route step"
                )
    return problems


def _find_cycles(steps: Sequence[Step], by_name: Mapping[str, Step]) -> list[str]:
    """Report each unbounded cycle once, as a path (use ``loop()`` for bounded repetition)."""
    problems: list[str] = []
    state: dict[str, int] = {}  # 0 unvisited, 1 on stack, 2 done
    stack: list[str] = []
    seen_cycles: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in by_name[name].after:
            if dep not in by_name or dep == name:
                continue
            if state.get(dep, 0) == 1:
                cycle = stack[stack.index(dep) :]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    path = " -> ".join([*reversed(cycle), cycle[-1]])
                    problems.append(
                        f"steps {path} form an unbounded cycle; use loop() with max_iterations"
                    )
            elif state.get(dep, 0) == 0:
                visit(dep)
        stack.pop()
        state[name] = 2

    for s in steps:
        if state.get(s.name, 0) == 0:
            visit(s.name)
    return problems


def _join_problems(step: str, join: Any, n: int, of: str, label: str = "") -> list[str]:
    """Quorum/Deadline parameters that ``n`` inputs (dependencies or voices) cannot meet."""
    if isinstance(join, Quorum) and not 1 <= join.k <= max(n, 1):
        return [f"step {step!r}: {label}Quorum(k={join.k}) needs 1 <= k <= {n} {of}"]
    if not isinstance(join, Deadline):
        return []
    out = []
    if join.seconds <= 0:
        out.append(f"step {step!r}: {label}Deadline(seconds={join.seconds}) must be > 0")
    if not 0 <= join.min_results <= max(n, 1):
        out.append(
            f"step {step!r}: {label}Deadline(min_results={join.min_results}) must be within 0..{n}"
        )
    return out


def _check_kind(s: Step) -> list[str]:
    match s.kind:
        case StepKind.CALL:
            if not _is_async_callable(s.spec):
                what = _describe(s.spec)
                return [f"step {s.name!r}: {what} is not an async function, a voice or a workflow"]
        case StepKind.LOOP:
            spec: Any = s.spec
            assert isinstance(spec, LoopSpec)
            out = []
            if spec.max_iterations < 1:
                out.append(f"step {s.name!r}: loop max_iterations must be >= 1")
            until: Any = spec.until
            if not callable(until):
                out.append(f"step {s.name!r}: loop until= must be a function of the output")
            if not isinstance(spec.body, Workflow) and not _is_async_callable(spec.body):
                out.append(f"step {s.name!r}: loop body must be an async function or a workflow")
            return out
        case StepKind.MAP:
            assert isinstance(s.spec, MapSpec)
            if s.spec.concurrency is not None and s.spec.concurrency < 1:
                return [f"step {s.name!r}: map concurrency must be >= 1"]
            if not isinstance(s.spec.fn, Workflow) and not _is_async_callable(s.spec.fn):
                return [f"step {s.name!r}: map fn must be an async function or a workflow"]
        case StepKind.CONSENSUS:
            assert isinstance(s.spec, ConsensusSpec)
            names = [v.name for v in s.spec.voices]
            if not names:
                return [f"step {s.name!r}: consensus needs at least one voice"]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                return [f"step {s.name!r}: voice names must be unique, repeated: {dupes}"]
            return _check_fusion(s, s.spec, len(names)) + _check_votes(s, s.spec.join, len(names))
        case StepKind.ROUTE:
            if not callable(s.spec):
                return [f"step {s.name!r}: route needs a function returning branch labels"]
        case StepKind.VOICE | StepKind.WORKFLOW | StepKind.AGENTS:
            pass
    return []


def _check_fusion(s: Step, spec: ConsensusSpec, n: int) -> list[str]:
    """A method that exists, and a ``min_votes`` the voices can reach: checked before any
    voice is called."""
    from ai_orchestration.consensus._fuse import METHODS

    out = []
    if spec.method not in METHODS:
        known = ", ".join(METHODS)
        out.append(f"step {s.name!r}: unknown consensus method {spec.method!r}; known: {known}")
    min_votes = spec.options.get("min_votes", 1)
    if isinstance(min_votes, int) and min_votes > n:
        out.append(f"step {s.name!r}: min_votes = {min_votes} but only {n} voice(s)")
    return out


def _check_votes(s: Step, votes: Any, n: int) -> list[str]:
    if not isinstance(votes, Adaptive):
        return _join_problems(s.name, votes, n, "voices", "votes=")
    out = []
    if not 0.5 <= votes.target < 1.0:
        out.append(f"step {s.name!r}: Adaptive(target={votes.target}) must be in [0.5, 1)")
    if votes.wave < 1:
        out.append(f"step {s.name!r}: Adaptive(wave={votes.wave}) must be >= 1")
    if votes.order not in ("cost", "value"):
        out.append(f"step {s.name!r}: Adaptive(order={votes.order!r}) must be cost or value")
    return out


def _check_types(s: Step, by_name: Mapping[str, Step]) -> list[str]:
    """Plain-class annotations on a single-dependency edge must be compatible."""
    if s.kind is not StepKind.CALL or len(s.after) != 1 or s.when is not None:
        return []
    dep = by_name.get(s.after[0])
    if dep is None or dep.kind is not StepKind.CALL:
        return []
    expects, _ = declared_types(s.spec)
    _, returns = declared_types(dep.spec)
    if expects is None or returns is None or issubclass(returns, expects):
        return []
    return [
        f"step {s.name!r} expects {expects.__name__} but step {dep.name!r} returns "
        f"{returns.__name__}"
    ]


def validate(
    steps: Sequence[Step], by_name: Mapping[str, Step], output: Sequence[str]
) -> list[str]:
    """Every problem in the definition, each naming its step."""
    if not steps:
        return ["a workflow needs at least one step"]
    problems = _check_graph(steps, by_name)
    problems += _find_cycles(steps, by_name)
    for s in steps:
        problems += _join_problems(s.name, s.join, len(s.after), "dependencies")
        problems += _check_kind(s)
        problems += _check_types(s, by_name)
        if s.timeout is not None and s.timeout <= 0:
            problems.append(f"step {s.name!r}: timeout must be > 0, got {s.timeout}")
    problems += [f"output step {n!r} is not a step" for n in output if n not in by_name]
    return problems
