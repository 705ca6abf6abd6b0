"""Generate-then-select in consensus steps: voices that only pick among answers (embedding
voices) vote on free text by choosing among the other voices' answers.

Ordering is asserted with events, never with wall-clock thresholds; ``GUARD`` only turns a
would-be hang into a failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration.consensus import Consensus
from ai_orchestration.errors import BadRequestError, ConsensusError
from ai_orchestration.policies import RetryPolicy, TimeoutPolicy, with_policies
from ai_orchestration.testing import Cassette, FunctionVoice, ScriptedVoice
from ai_orchestration.tracing import InMemorySpanProcessor, SpanKind, Trace
from ai_orchestration.voices import Usage, Voice, VoiceRequest, VoiceResponse
from ai_orchestration.voices.embedding import EmbeddingVoice
from ai_orchestration.workflow import Adaptive, All, Deadline, FirstSuccess, Quorum, WorkflowBuilder

GUARD = 10.0
NO_CANDIDATES = "no candidates to select among: no other voice gave a valid answer"


class Picker:
    """A fake selector: answers ``pick(request.choices)``; ``gate`` (an Event or Barrier) is
    awaited first when given. Without choices it fails as an embedding voice does."""

    picks_among_answers = True

    def __init__(self, name: str = "pick", pick: Any = lambda c: c[0], gate: Any = None) -> None:
        self._name, self.pick, self.gate = name, pick, gate
        self.requests: list[VoiceRequest] = []
        self.started = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        self.requests.append(request)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if not request.choices:
            raise BadRequestError("no choices", voice=self._name)
        return VoiceResponse(text=self.pick(request.choices), usage=Usage(calls=1))


def says(name: str, answer: str, *, delay: float = 0.0) -> FunctionVoice:
    return FunctionVoice(name, lambda r: answer, delay=delay)


def down(name: str) -> ScriptedVoice:
    return ScriptedVoice(name, [OSError("down")])


async def run(voices: list[Any], inp: Any, join: Any = None) -> tuple[Any, Trace]:
    """Run one consensus step; returns (output or raised exception, trace)."""
    wf = WorkflowBuilder("w").consensus("vote", voices, votes=join or All()).build()
    mem = InMemorySpanProcessor()
    try:
        async with asyncio.timeout(GUARD):
            out: Any = (await wf.run(inp, processors=[mem])).output
    except Exception as exc:
        out = exc
    return out, mem.traces[0]


def explanation(trace: Trace) -> dict[str, Any]:
    (span,) = trace.find(SpanKind.CONSENSUS)
    return span.data.explanation  # type: ignore[attr-defined,no-any-return]


def answers(out: Consensus) -> dict[str, Any]:
    return {v.voice: v.answer if v.ok else v.error for v in out.votes}


async def test_free_text_selector_picks_among_the_distinct_answers() -> None:
    # "a" answers last, but candidates follow the voices' order and keep the first spelling
    voices = [says("a", "tokyo.", delay=0.02), says("b", "Tokyo"), says("c", "Kyoto"), Picker()]
    out, trace = await run(voices, "What is the capital of Japan?")
    pick = voices[3]
    assert isinstance(out, Consensus) and isinstance(pick, Picker)
    (request,) = pick.requests
    assert request.prompt == "What is the capital of Japan?"
    assert request.choices == ("tokyo.", "Kyoto")
    assert answers(out) == {"a": "tokyo.", "b": "Tokyo", "c": "Kyoto", "pick": "tokyo."}
    assert out.agreement == 3 / 4
    assert out.explanation["selection"] == {"pick": ["tokyo.", "Kyoto"]}
    assert explanation(trace)["selection"] == {"pick": ["tokyo.", "Kyoto"]}
    assert explanation(trace)["not_awaited"] == []


async def test_a_single_candidate_is_an_abstention_not_an_echo() -> None:
    picker = Picker()
    out, _ = await run([says("a", "Paris"), says("b", "paris"), picker], "Capital of France?")
    assert {v.voice: v.answer for v in out.votes if v.valid} == {"a": "Paris", "b": "paris"}
    assert picker.requests == []
    (pick,) = [v for v in out.votes if v.voice == "pick"]
    assert pick.answer is None and pick.error is not None and "nothing to select" in pick.error
    assert pick.abstained  # its own choice, typed: not a failure to be told apart by its text
    assert out.explanation["selection"] == {"pick": ["Paris"]}
    assert out.agreement == 1.0 and len([v for v in out.votes if v.valid]) == 2


async def test_the_selector_is_not_offered_answers_that_echo_the_question() -> None:
    # issue 9: e5 picked the candidate most like the question ("Italy", "77")
    picker = Picker()  # picks the first choice offered, as e5 picked the echo
    voices = [says("a", "Italy"), says("b", "77"), says("c", "Rome"), picker]
    out, _ = await run(voices, "What is the capital of Italy? And 7 × 11?")
    (request,) = picker.requests
    assert request.choices == ("Rome",)
    assert answers(out)["pick"] == "Rome"
    assert out.answer == "Rome" and out.agreement == 2 / 4


async def test_when_every_answer_echoes_the_question_the_selector_abstains() -> None:
    picker = Picker()
    out, _ = await run(
        [says("a", "Italy"), says("b", "italy, capital"), picker], "Capital of Italy?"
    )
    assert picker.requests == []
    assert "only repeats words or numbers of the question" in answers(out)["pick"]
    assert out.explanation["selection"] == {"pick": []}


async def test_with_choices_every_voice_is_asked_at_once() -> None:
    barrier = asyncio.Barrier(3)  # passes only if all three voices are waiting together

    async def wait_then(answer: str) -> str:
        await barrier.wait()
        return answer

    pick = Picker(pick=lambda c: c[1], gate=barrier)
    voices = [
        FunctionVoice("a", lambda r: wait_then("yes")),
        FunctionVoice("b", lambda r: wait_then("no")),
        pick,
    ]
    out, trace = await run(voices, {"prompt": "q", "choices": ["yes", "no"]})
    assert answers(out) == {"a": "yes", "b": "no", "pick": "no"}
    assert pick.requests[0].choices == ("yes", "no")
    assert "selection" not in out.explanation and "selection" not in explanation(trace)


async def test_when_every_generator_fails_the_selector_vote_says_so() -> None:
    pick = Picker()
    out, trace = await run([down("a"), down("b"), pick], "q")
    assert isinstance(out, ConsensusError)
    assert pick.requests == []
    (span,) = trace.find(SpanKind.CONSENSUS)
    votes = {v.voice: v.error for v in span.data.votes}  # type: ignore[attr-defined]
    assert votes == {
        "a": "voice 'a': OSError: down",
        "b": "voice 'b': OSError: down",
        "pick": NO_CANDIDATES,
    }


async def test_a_selector_alone_has_nothing_to_select_among() -> None:
    pick = Picker()
    out, trace = await run([pick], "q")
    assert isinstance(out, ConsensusError) and pick.requests == []
    (span,) = trace.find(SpanKind.CONSENSUS)
    assert span.data.votes[0].error == NO_CANDIDATES  # type: ignore[attr-defined]


async def test_quorum_reached_by_the_generators_leaves_the_selector_unasked() -> None:
    pick = Picker()
    out, trace = await run([says("a", "yes"), says("b", "yes"), pick], "q", Quorum(2))
    assert answers(out) == {"a": "yes", "b": "yes"}
    assert pick.requests == []
    assert explanation(trace)["not_awaited"] == ["pick"]
    assert "selection" not in out.explanation


async def test_quorum_completed_by_the_selector() -> None:
    voices = [says("a", "yes"), says("b", "no"), down("c"), Picker()]
    out, trace = await run(voices, "q", Quorum(3))
    assert answers(out) == {"a": "yes", "b": "no", "c": "voice 'c': OSError: down", "pick": "yes"}
    assert explanation(trace)["not_awaited"] == []
    assert out.explanation["selection"] == {"pick": ["yes", "no"]}


async def test_first_success_needs_no_selector() -> None:
    pick = Picker()
    out, _ = await run([says("a", "yes"), pick], "q", FirstSuccess())
    assert answers(out) == {"a": "yes"} and pick.requests == []


async def test_a_deadline_before_the_selection_phase_leaves_the_selector_unasked() -> None:
    never = asyncio.Event()

    async def stuck(_: Any) -> str:
        await never.wait()
        return "late"

    pick = Picker()
    voices = [says("a", "yes"), FunctionVoice("stuck", stuck), pick]
    out, trace = await run(voices, "q", Deadline(0.05))
    assert answers(out) == {"a": "yes"}
    assert pick.requests == []
    assert explanation(trace)["not_awaited"] == ["stuck", "pick"]


async def test_adaptive_asks_selectors_last_among_all_earlier_answers() -> None:
    pick = Picker(pick=lambda c: c[-1])
    voices = [pick, says("a", "Tokyo"), says("b", "Kyoto")]
    cost = {"pick": 0.0, "a": 1.0, "b": 2.0}  # by cost alone the selector would go first
    out, _ = await run(voices, "q", Adaptive(target=0.99, order="cost", cost=cost))
    assert out.explanation["adaptive"]["asked"] == ["a", "b", "pick"]
    assert out.explanation["selection"] == {"pick": ["Tokyo", "Kyoto"]}
    assert answers(out)["pick"] == "Kyoto"


async def test_adaptive_with_choices_keeps_its_order() -> None:
    voices = [Picker(), says("a", "yes")]
    plan = Adaptive(target=0.99, order="cost", cost={"pick": 0.0, "a": 1.0})
    out, _ = await run(voices, {"prompt": "q", "choices": ["yes", "no"]}, plan)
    assert out.explanation["adaptive"]["asked"] == ["pick", "a"]


async def test_cancelling_during_selection_leaves_no_tasks() -> None:
    never = asyncio.Event()
    pick = Picker(gate=never)
    wf = WorkflowBuilder("w").consensus("vote", [says("a", "yes"), says("b", "no"), pick]).build()
    before = asyncio.all_tasks()
    task = asyncio.create_task(wf.run("q"))
    async with asyncio.timeout(GUARD):
        await pick.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before


def test_wrappers_and_embedding_voices_expose_the_marker(tmp_path: Path) -> None:
    wrapped = with_policies(Picker(), RetryPolicy(), TimeoutPolicy(5.0))
    assert wrapped.picks_among_answers is True  # type: ignore[attr-defined]
    assert Cassette(tmp_path / "c.jsonl").wrap(Picker()).picks_among_answers is True
    plain: Voice = with_policies(says("a", "x"), RetryPolicy())
    assert plain.picks_among_answers is False  # type: ignore[attr-defined]
    assert EmbeddingVoice("e5").picks_among_answers is True
    assert EmbeddingVoice("faq", candidates=["Reset it."]).picks_among_answers is False
