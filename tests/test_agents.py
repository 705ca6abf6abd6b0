"""Agents and handoffs: single and parallel handoffs, filters, limits, spans, structural sharing."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

import pytest

from ai_orchestration.agents import Agent, Handoff, Team, TeamResult, summarise
from ai_orchestration.context import (
    Context,
    Message,
    ToolCall,
    drop_tool_messages,
    keep_last,
    redact,
)
from ai_orchestration.errors import JoinError, LoopLimitError, StepError, VoiceError
from ai_orchestration.testing import FunctionVoice, ScriptedVoice
from ai_orchestration.tracing import InMemorySpanProcessor, SpanKind, SpanStatus
from ai_orchestration.voices import VoiceRequest, VoiceResponse
from ai_orchestration.workflow import All, Deadline, FirstSuccess, Quorum, WorkflowBuilder


def transfer(*targets: str, text: str = "") -> VoiceResponse:
    calls = tuple(ToolCall(f"call-{t}", f"transfer_to_{t}") for t in targets)
    return VoiceResponse(text=text, tool_calls=calls)


def contents(ctx: Context) -> list[tuple[str, str | None, str]]:
    return [(m.role, m.name, m.content) for m in ctx.messages]


class Recorder:
    """A voice that records the requests it got and answers from a function."""

    def __init__(self, name: str, answer: Any) -> None:
        self.requests: list[VoiceRequest] = []
        self._answer = answer
        self.voice = FunctionVoice(name, self._respond)

    def _respond(self, request: VoiceRequest) -> Any:
        self.requests.append(request)
        return self._answer(request) if callable(self._answer) else self._answer


# --- single handoff ------------------------------------------------------------------------------


async def test_single_handoff_transfers_control_and_context() -> None:
    a = Recorder("va", transfer("b", text="passing to b"))
    b = Recorder("vb", "the answer")
    team = Team(
        [Agent("a", a.voice, "triage", handoffs=("b",)), Agent("b", b.voice, "expert")],
        start="a",
    )
    result = await team.run("question")
    assert isinstance(result, TeamResult)
    assert (result.agent, result.hops, result.answer) == ("b", 1, "the answer")
    assert contents(result.context) == [
        ("user", None, "question"),
        ("assistant", "a", "passing to b"),
        ("assistant", "b", "the answer"),
    ]
    (req_a,) = a.requests
    assert req_a.instructions == "triage"
    assert [t.name for t in req_a.tools] == ["transfer_to_b"]
    (req_b,) = b.requests
    assert req_b.instructions == "expert" and req_b.tools == ()
    assert [m.content for m in req_b.messages] == ["question", "passing to b"]
    assert req_b.messages[1].tool_calls == (ToolCall("call-b", "transfer_to_b"),)


async def test_a_custom_chooser_decides_the_handoff() -> None:
    b = Recorder("vb", "from b")

    def choose(ctx: Context, response: VoiceResponse) -> str | None:
        return "b" if "route me" in response.text else None

    team = Team(
        [
            Agent("a", FunctionVoice("va", lambda r: "route me"), handoffs=("b",), choose=choose),
            Agent("b", b.voice),
        ],
        start="a",
    )
    result = await team.run("x")
    assert (result.agent, result.answer) == ("b", "from b")


async def test_a_hop_shares_message_objects_instead_of_copying() -> None:
    history = [Message("user", f"m{i}") for i in range(50)]
    start = Context(history)
    a = Recorder("va", transfer("b"))
    b = Recorder("vb", "done")
    team = Team([Agent("a", a.voice, handoffs=("b",)), Agent("b", b.voice)], start="a")
    result = await team.run(start)
    received = b.requests[0].messages
    assert all(x is y for x, y in zip(received[:50], history, strict=True))
    assert all(x is y for x, y in zip(a.requests[0].messages, history, strict=True))
    assert all(x is y for x, y in zip(result.context.messages[:51], received, strict=True))
    assert start.messages == tuple(history)  # the caller's context is untouched


def test_context_extend_is_proportional_to_the_delta() -> None:
    big = Context([Message("user", f"message {i}") for i in range(100_000)])
    assert len(big.messages) == 100_000  # materialised once, then shared
    new = Message("assistant", "hi")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        child = big.extend(new)
        grandchild = child.extend(new, new)
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Copying the history would allocate >= 800 KB (one pointer per message); a node is tiny.
    assert allocated < 2_000
    assert (len(child), len(grandchild), grandchild.last) == (100_001, 100_003, new)
    assert grandchild.messages[0] is big.messages[0]


# --- filters on handoffs ------------------------------------------------------------------------


async def run_filtered(filters: tuple[Any, ...], start: Context) -> list[VoiceRequest]:
    b = Recorder("vb", "done")
    team = Team(
        [
            Agent(
                "a", FunctionVoice("va", lambda r: transfer("b")), handoffs=(Handoff("b", filters),)
            ),
            Agent("b", b.voice),
        ],
        start="a",
    )
    await team.run(start)
    return b.requests


async def test_keep_last_filter_on_a_handoff() -> None:
    start = Context([Message("system", "be nice"), *(Message("user", f"u{i}") for i in range(5))])
    (req,) = await run_filtered((keep_last(2),), start)
    assert [(m.role, m.content) for m in req.messages] == [
        ("system", "be nice"),
        ("user", "u4"),
        ("assistant", ""),
    ]


async def test_drop_tool_messages_filter_on_a_handoff() -> None:
    start = Context(
        [
            Message("user", "what time is it?"),
            Message("assistant", "", tool_calls=(ToolCall("t1", "clock"),)),
            Message("tool", "12:00", tool_call_id="t1"),
            Message("assistant", "It is noon."),
        ]
    )
    (req,) = await run_filtered((drop_tool_messages,), start)
    # a's own handoff message is a tool-call-only assistant message: dropped too.
    assert [(m.role, m.content) for m in req.messages] == [
        ("user", "what time is it?"),
        ("assistant", "It is noon."),
    ]


async def test_redact_filter_on_a_handoff() -> None:
    start = Context([Message("user", "my key is sk-proj-ABCDEFGHIJKLMNOP, card 4111")])
    (req,) = await run_filtered((redact(r"sk-[\w-]+", r"\b\d{4}\b"),), start)
    assert req.messages[0].content == "my key is [REDACTED], card [REDACTED]"


async def test_summarise_filter_uses_its_voice() -> None:
    summariser = ScriptedVoice("sum", ["they talked about cats"])
    start = Context([Message("user", "I like cats"), Message("assistant", "Cats are great", "x")])
    (req,) = await run_filtered(
        (summarise(summariser, keep_last=1, instructions="Be brief."),), start
    )
    assert [(m.role, m.content) for m in req.messages] == [
        ("system", "Summary of earlier conversation: they talked about cats"),
        ("assistant", ""),
    ]
    (sreq,) = summariser.requests
    assert sreq.instructions == "Be brief."
    assert sreq.prompt == "user: I like cats\nx: Cats are great"
    summariser.assert_complete()


async def test_filters_compose_in_order_and_are_recorded_on_the_span() -> None:
    start = Context([Message("user", f"sk-proj-SECRET{i:04d}xx") for i in range(4)])
    mem = InMemorySpanProcessor()
    b = Recorder("vb", "done")
    team = Team(
        [
            Agent(
                "a",
                FunctionVoice("va", lambda r: transfer("b")),
                handoffs=(Handoff("b", (keep_last(2), redact(r"sk-[\w-]+"))),),
            ),
            Agent("b", b.voice),
        ],
        start="a",
    )
    wf = WorkflowBuilder("w").add(team.as_step("team")).build()
    await wf.run(start, processors=[mem])
    assert [m.content for m in b.requests[0].messages] == ["[REDACTED]", ""]
    (handoff,) = mem.traces[0].find(SpanKind.HANDOFF)
    assert handoff.data.filters == ["keep_last", "redact"]  # type: ignore[attr-defined]


# --- parallel handoff with join ------------------------------------------------------------------


def fan_team(join: Any, **branch_voices: Any) -> tuple[Team, ScriptedVoice]:
    lead = ScriptedVoice("lead", [transfer(*branch_voices, text="fanning out"), "final answer"])
    agents = [Agent("lead", lead, handoffs=tuple(branch_voices), join=join)]
    agents += [Agent(name, voice) for name, voice in branch_voices.items()]
    return Team(agents, start="lead"), lead


async def test_parallel_handoff_with_all_merges_every_branch_back() -> None:
    team, lead = fan_team(
        All(), b=FunctionVoice("vb", lambda r: "from b"), c=FunctionVoice("vc", lambda r: "from c")
    )
    result = await team.run("q")
    assert (result.agent, result.hops, result.answer) == ("lead", 1, "final answer")
    assert contents(result.context) == [
        ("user", None, "q"),
        ("assistant", "lead", "fanning out"),
        ("assistant", "b", "from b"),
        ("assistant", "c", "from c"),
        ("assistant", "lead", "final answer"),
    ]
    # control came back to the lead, which saw both branches' messages
    assert [m.content for m in lead.requests[1].messages][-2:] == ["from b", "from c"]
    lead.assert_complete()


class Stuck:
    """A voice function that never answers until cancelled; records its finally."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.finally_ran = False

    async def __call__(self, request: VoiceRequest) -> str:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.finally_ran = True
        raise AssertionError("unreachable")


async def test_parallel_handoff_first_success_cancels_the_others() -> None:
    stuck = Stuck()

    async def fast(request: VoiceRequest) -> str:
        await stuck.entered.wait()
        return "fast one"

    team, _ = fan_team(
        FirstSuccess(),
        broken=ScriptedVoice("vbroken", [OSError("down")]),
        slow=FunctionVoice("vslow", stuck),
        fast=FunctionVoice("vfast", fast),
    )
    before = asyncio.all_tasks()
    result = await team.run("q")
    assert asyncio.all_tasks() == before
    assert stuck.finally_ran
    assert [m.content for m in result.context.messages] == [
        "q",
        "fanning out",
        "fast one",
        "final answer",
    ]


async def test_parallel_handoff_quorum_merges_k_branches() -> None:
    stuck = Stuck()
    team, _ = fan_team(
        Quorum(2),
        b=FunctionVoice("vb", lambda r: "from b"),
        slow=FunctionVoice("vslow", stuck),
        d=FunctionVoice("vd", lambda r: "from d"),
    )
    result = await team.run("q")
    assert [m.content for m in result.context.messages][2:] == ["from b", "from d", "final answer"]
    assert stuck.finally_ran


async def test_parallel_handoff_deadline_takes_the_branches_done_in_time() -> None:
    stuck = Stuck()

    async def later(request: VoiceRequest) -> str:
        await asyncio.sleep(0.01)
        return "from c"

    team, _ = fan_team(
        Deadline(0.3, min_results=1),
        b=FunctionVoice("vb", lambda r: "from b"),
        c=FunctionVoice("vc", later),
        slow=FunctionVoice("vslow", stuck),
    )
    result = await team.run("q")
    # not just the first branch: everything that arrived before the deadline is merged
    assert [m.content for m in result.context.messages][2:] == ["from b", "from c", "final answer"]
    assert stuck.finally_ran


async def test_parallel_handoff_deadline_below_min_results_is_a_join_error() -> None:
    team, _ = fan_team(
        Deadline(0.02, min_results=2),
        b=FunctionVoice("vb", lambda r: "from b"),
        slow=FunctionVoice("vslow", Stuck()),
    )
    with pytest.raises(JoinError, match="got 1 of 2 branches"):
        await team.run("q")


async def test_parallel_handoff_join_failure_is_a_join_error() -> None:
    stuck = Stuck()
    team, _ = fan_team(
        All(),
        ok=FunctionVoice("vok", lambda r: "fine"),
        broken=ScriptedVoice("vbroken", [OSError("down")]),
        slow=FunctionVoice("vslow", stuck),
    )
    with pytest.raises(JoinError) as info:
        await team.run("q")
    err = info.value
    assert str(err) == (
        "agent 'lead': parallel handoff to ['ok', 'broken', 'slow'] got 1 of 3 branches"
    )
    assert err.step == "lead"
    assert isinstance(err.__cause__, VoiceError) and err.__cause__.voice == "vbroken"
    assert stuck.finally_ran


# --- errors and limits ---------------------------------------------------------------------------


async def test_unknown_handoff_target_is_an_error() -> None:
    team = Team(
        [
            Agent("a", FunctionVoice("va", lambda r: transfer("zz")), handoffs=("b",)),
            Agent("b", FunctionVoice("vb", lambda r: "x")),
        ],
        start="a",
    )
    with pytest.raises(StepError) as info:
        await team.run("q")
    assert info.value.step == "a"
    assert str(info.value) == (
        "agent 'a' tried to hand off to 'zz', which is not one of its handoffs ['b']"
    )


async def test_max_hops_is_a_loop_limit_error() -> None:
    ping = FunctionVoice("vping", lambda r: transfer("pong"))
    pong = FunctionVoice("vpong", lambda r: transfer("ping"))
    team = Team(
        [Agent("ping", ping, handoffs=("pong",)), Agent("pong", pong, handoffs=("ping",))],
        start="ping",
        max_hops=3,
    )
    with pytest.raises(LoopLimitError) as info:
        await team.run("q")
    assert (info.value.step, info.value.max_iterations) == ("pong", 3)
    assert str(info.value) == ("team starting at 'ping' exceeded max_hops=3 ('pong' -> ['ping'])")
    assert (ping.calls, pong.calls) == (2, 2)


async def test_team_input_must_be_a_prompt_or_a_context() -> None:
    team = Team([Agent("a", FunctionVoice("va", lambda r: "x"))], start="a")
    with pytest.raises(StepError, match="input must be a prompt or a Context, got int"):
        await team.run(42)


# --- spans -------------------------------------------------------------------------------------


async def test_handoff_spans_are_recorded_under_the_team_step() -> None:
    team, _ = fan_team(
        All(), b=FunctionVoice("vb", lambda r: "from b"), c=FunctionVoice("vc", lambda r: "from c")
    )
    mem = InMemorySpanProcessor()
    wf = WorkflowBuilder("agents").add(team.as_step("team")).build()
    result = await wf.run("q", processors=[mem])
    assert isinstance(result.output, TeamResult) and result.output.answer == "final answer"
    trace = mem.traces[0]
    (step,) = trace.find(SpanKind.STEP, "team")
    (handoff,) = trace.find(SpanKind.HANDOFF)
    assert handoff.name == "lead->b+c"
    assert handoff.parent_id == step.span_id and handoff.status is SpanStatus.OK
    data = handoff.data
    assert (data.source, data.targets, data.messages, data.filters) == (  # type: ignore[attr-defined]
        "lead",
        ["b", "c"],
        2,
        [],
    )
    assert data.delta.content == "fanning out"  # type: ignore[attr-defined]
    voices = [(s.name, s.parent_id, s.status) for s in trace.find(SpanKind.VOICE)]
    assert sorted(voices) == sorted(
        [
            ("lead", step.span_id, SpanStatus.OK),
            ("vb", step.span_id, SpanStatus.OK),
            ("vc", step.span_id, SpanStatus.OK),
            ("lead", step.span_id, SpanStatus.OK),
        ]
    )
    assert result.usage.calls == 4
