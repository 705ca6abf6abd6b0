"""Workflow validation: every problem is found before any run, named by step, in one error."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from ai_orchestration.agents import Agent, Team
from ai_orchestration.errors import AiOrchestrationError, UserError, WorkflowError
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.workflow import (
    All,
    Deadline,
    FirstSuccess,
    Quorum,
    Step,
    StepKind,
    Workflow,
    WorkflowBuilder,
)


async def ident(x: object) -> object:
    return x


async def to_text(x: int) -> str:
    return str(x)


async def needs_int(x: int) -> int:
    return x


async def gives_bool(x: int) -> bool:
    return bool(x)


async def untyped(x):  # type: ignore[no-untyped-def]
    return x


def sync_fn(x: object) -> object:
    return x


def problems_of(builder: WorkflowBuilder) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        builder.build()
    return info.value.problems


# --- valid definitions --------------------------------------------------------------------------


def test_chain_defaults_to_after_previous_and_sinks_are_output() -> None:
    wf = WorkflowBuilder("w").step("a", ident).step("b", ident).step("c", ident, after="a").build()
    assert [(s.name, s.after) for s in wf.steps] == [("a", ()), ("b", ("a",)), ("c", ("a",))]
    assert wf.roots == ("a",)
    assert wf.output == ("b", "c")
    assert dict(wf.consumers) == {"a": ("b", "c"), "b": (), "c": ()}


def test_step_kinds_are_inferred() -> None:
    sub = WorkflowBuilder("sub").step("x", ident).build()
    voice = FunctionVoice("v", lambda r: "ok")
    wf = (
        WorkflowBuilder("w")
        .step("call", ident)
        .step("voice", voice)
        .step("sub", sub)
        .consensus("vote", [voice])
        .map("each", ident)
        .route("pick", lambda x: "yes")
        .loop("again", ident, until=lambda x: True, max_iterations=2, after="call")
        .build()
    )
    assert [s.kind for s in wf.steps] == [
        StepKind.CALL,
        StepKind.VOICE,
        StepKind.WORKFLOW,
        StepKind.CONSENSUS,
        StepKind.MAP,
        StepKind.ROUTE,
        StepKind.LOOP,
    ]


def test_workflow_is_immutable() -> None:
    wf = WorkflowBuilder("w").step("a", ident).build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        wf.name = "other"  # type: ignore[misc]
    assert isinstance(wf.steps, tuple)


def test_compatible_annotations_pass() -> None:
    # bool is a subclass of int; unannotated steps are not checked.
    WorkflowBuilder("w").step("a", gives_bool).step("b", needs_int).build()
    WorkflowBuilder("w").step("a", untyped).step("b", needs_int).build()
    WorkflowBuilder("w").step("a", to_text).step("b", untyped).build()


# --- every kind of problem ----------------------------------------------------------------------


def test_unknown_dependency() -> None:
    assert problems_of(WorkflowBuilder("w").step("a", ident).step("b", ident, after="nope")) == [
        "step 'b' depends on unknown step 'nope'"
    ]


def test_duplicate_step() -> None:
    assert problems_of(WorkflowBuilder("w").step("a", ident).step("a", ident, after=())) == [
        "step 'a' is defined twice"
    ]


def test_self_dependency() -> None:
    assert problems_of(WorkflowBuilder("w").step("a", ident, after="a")) == [
        "step 'a' depends on itself"
    ]


def test_cycle_is_reported_once_as_a_path() -> None:
    builder = (
        WorkflowBuilder("w")
        .step("start", ident)
        .step("a", ident, after=["start", "c"])
        .step("b", ident, after="a")
        .step("c", ident, after="b")
    )
    assert problems_of(builder) == [
        "steps b -> c -> a -> b form an unbounded cycle; use loop() with max_iterations"
    ]


def test_two_disjoint_cycles_are_both_reported() -> None:
    builder = (
        WorkflowBuilder("w")
        .step("a", ident, after="b")
        .step("b", ident, after="a")
        .step("x", ident, after="y")
        .step("y", ident, after="x")
    )
    problems = problems_of(builder)
    assert len(problems) == 2
    assert all("form an unbounded cycle" in p for p in problems)
    assert {"a", "b"} <= set(problems[0].split()) and {"x", "y"} <= set(problems[1].split())


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        (Quorum(3), ["step 'j': Quorum(k=3) needs 1 <= k <= 2 dependencies"]),
        (Quorum(0), ["step 'j': Quorum(k=0) needs 1 <= k <= 2 dependencies"]),
        (Deadline(0), ["step 'j': Deadline(seconds=0) must be > 0"]),
        (Deadline(1.0, min_results=3), ["step 'j': Deadline(min_results=3) must be within 0..2"]),
        (
            Deadline(-1, min_results=-1),
            [
                "step 'j': Deadline(seconds=-1) must be > 0",
                "step 'j': Deadline(min_results=-1) must be within 0..2",
            ],
        ),
    ],
)
def test_bad_join_parameters(join: Quorum | Deadline, expected: list[str]) -> None:
    builder = (
        WorkflowBuilder("w")
        .step("a", ident, after=())
        .step("b", ident, after=())
        .step("j", ident, after=["a", "b"], join=join)
    )
    assert problems_of(builder) == expected


@pytest.mark.parametrize("join", [All(), FirstSuccess(), Quorum(1), Quorum(2), Deadline(0.1, 2)])
def test_good_join_parameters(join: All | FirstSuccess | Quorum | Deadline) -> None:
    (
        WorkflowBuilder("w")
        .step("a", ident, after=())
        .step("b", ident, after=())
        .step("j", ident, after=["a", "b"], join=join)
        .build()
    )


def test_non_async_functions() -> None:
    builder = (
        WorkflowBuilder("w")
        .step("plain", sync_fn)  # type: ignore[arg-type]
        .step("lam", lambda x: x)  # type: ignore[arg-type, return-value]
        .map("each", sync_fn)  # type: ignore[arg-type]
    )
    assert problems_of(builder) == [
        "step 'plain': 'sync_fn' is not an async function, a voice or a workflow",
        "step 'lam': 'test_non_async_functions.<locals>.<lambda>' is not an async function, "
        "a voice or a workflow",
        "step 'each': map fn must be an async function or a workflow",
    ]


def test_async_callable_object_is_accepted() -> None:
    class Doubler:
        async def __call__(self, x: int) -> int:
            return 2 * x

    wf = WorkflowBuilder("w").step("a", Doubler()).build()
    assert wf.steps[0].kind is StepKind.CALL


def test_type_mismatch_between_annotated_steps() -> None:
    builder = WorkflowBuilder("w").step("a", to_text).step("b", needs_int)
    assert problems_of(builder) == ["step 'b' expects int but step 'a' returns str"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_iterations": 0}, ["step 'l': loop max_iterations must be >= 1"]),
        ({"max_iterations": -3}, ["step 'l': loop max_iterations must be >= 1"]),
        (
            {"max_iterations": 2, "until": "done"},
            ["step 'l': loop until= must be a function of the output"],
        ),
        (
            {"max_iterations": 2, "body": sync_fn},
            ["step 'l': loop body must be an async function or a workflow"],
        ),
    ],
)
def test_bad_loops(kwargs: dict[str, object], expected: list[str]) -> None:
    args: dict[str, object] = {"until": lambda x: True, "body": ident, **kwargs}
    body = args.pop("body")
    builder = WorkflowBuilder("w").loop("l", body, **args)  # type: ignore[arg-type]
    assert problems_of(builder) == expected


def test_route_misuse() -> None:
    builder = (
        WorkflowBuilder("w")
        .step("a", ident, after=())
        .step("b", ident, after=())
        .step("not_a_route_branch", ident, after="a", when="yes")
        .step("two_deps", ident, after=["a", "b"], when="yes")
        .route("r", "not callable", after="a")  # type: ignore[arg-type]
    )
    assert problems_of(builder) == [
        "step 'two_deps': when='yes' needs exactly one dependency (the route step) or an "
        "explicit (route, label) pair",
        "step 'not_a_route_branch': when='yes' refers to 'a', which is not a route step",
        "step 'r': route needs a function returning branch labels",
    ]


def test_explicit_when_pair_adds_the_route_as_dependency() -> None:
    wf = (
        WorkflowBuilder("w")
        .step("a", ident)
        .route("r", lambda x: "yes")
        .step("b", ident, after="a", when=("r", "yes"))
        .build()
    )
    assert wf.by_name["b"].after == ("a", "r")
    assert wf.by_name["b"].when == ("r", "yes")


def test_bad_output_name() -> None:
    assert problems_of(WorkflowBuilder("w").step("a", ident).output("a", "zz")) == [
        "output step 'zz' is not a step"
    ]


def test_empty_workflow() -> None:
    assert problems_of(WorkflowBuilder("w")) == ["a workflow needs at least one step"]


def test_bad_timeouts_and_map_concurrency() -> None:
    builder = (
        WorkflowBuilder("w", timeout=0).step("a", ident, timeout=-1).map("m", ident, concurrency=0)
    )
    assert problems_of(builder) == [
        "step 'a': timeout must be > 0, got -1",
        "step 'm': map concurrency must be >= 1",
        "workflow timeout must be > 0, got 0",
    ]


def test_consensus_voices() -> None:
    v = FunctionVoice("same", lambda r: "x")
    builder = WorkflowBuilder("w").consensus("none", []).consensus("dupes", [v, v], after=())
    assert problems_of(builder) == [
        "step 'none': consensus needs at least one voice",
        "step 'dupes': voice names must be unique, repeated: ['same']",
    ]


# --- one error listing everything ---------------------------------------------------------------


def test_one_error_lists_every_problem_by_step_name() -> None:
    builder = (
        WorkflowBuilder("bad")
        .step("a", ident, after="c")
        .step("b", ident, after="a")
        .step("c", ident, after="b")
        .step("d", sync_fn, after=())  # type: ignore[arg-type]
        .step("d", ident, after=())
        .step("e", ident, after="ghost")
        .step("t1", to_text, after=())
        .step("t2", needs_int)
        .step("j", ident, after=["t1", "e"], join=Quorum(5))
        .loop("l", ident, until=lambda x: True, max_iterations=0, after=())
        .output("j", "missing")
    )
    with pytest.raises(WorkflowError) as info:
        builder.build()
    err = info.value
    assert err.workflow == "bad"
    assert err.problems == [
        "step 'd' is defined twice",
        "step 'e' depends on unknown step 'ghost'",
        "steps b -> c -> a -> b form an unbounded cycle; use loop() with max_iterations",
        "step 'd': 'sync_fn' is not an async function, a voice or a workflow",
        "step 't2' expects int but step 't1' returns str",
        "step 'j': Quorum(k=5) needs 1 <= k <= 2 dependencies",
        "step 'l': loop max_iterations must be >= 1",
        "output step 'missing' is not a step",
    ]
    assert str(err) == "workflow 'bad' is invalid: " + "; ".join(err.problems)
    assert isinstance(err, UserError) and isinstance(err, AiOrchestrationError)


def test_workflow_error_pickles() -> None:
    err = WorkflowError("w", ["step 'a' is defined twice", "output step 'z' is not a step"])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is WorkflowError
    assert (back.workflow, back.problems, str(back)) == (err.workflow, err.problems, str(err))


# --- teams are validated the same way -----------------------------------------------------------


def test_team_validation_lists_every_problem() -> None:
    v = FunctionVoice("v", lambda r: "done")
    with pytest.raises(WorkflowError) as info:
        Team(
            [Agent("a", v, handoffs=("b", "ghost")), Agent("a", v), Agent("b", v)],
            start="nobody",
            max_hops=-1,
        )
    assert info.value.problems == [
        "agent 'a' is defined twice",
        "start agent 'nobody' is not in the team",
        "agent 'a' hands off to unknown agent 'ghost'",
        "max_hops must be >= 0, got -1",
    ]


# --- a Workflow built without the builder ---------------------------------------------------------


async def test_a_workflow_built_by_hand_is_validated_and_runs() -> None:
    steps = (Step("a", StepKind.CALL, ident, ()), Step("b", StepKind.CALL, ident, ("a",)))
    wf = Workflow("by-hand", steps, ("b",))
    assert (wf.roots, dict(wf.consumers)) == (("a",), {"a": ("b",), "b": ()})
    assert (await wf.run(7)).output == 7  # it runs its steps (it used to output None)


def test_an_invalid_hand_built_workflow_lists_every_problem() -> None:
    steps = (Step("a", StepKind.CALL, ident, ("ghost",)), Step("a", StepKind.CALL, ident, ()))
    with pytest.raises(WorkflowError) as err:
        Workflow("by-hand", steps, ("nowhere",), timeout=0)
    problems = err.value.problems
    assert "step 'a' is defined twice" in problems
    assert "workflow timeout must be > 0, got 0" in problems
    assert any("ghost" in p for p in problems) and any("nowhere" in p for p in problems)
    with pytest.raises(WorkflowError, match="sequence of Step objects"):
        Workflow("w", ("not a step",), ("a",))  # type: ignore[arg-type]
