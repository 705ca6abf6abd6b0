"""How each kind of step runs: voice calls, consensus over voices, map, route, loop, sub-workflow.

The scheduler (``_engine``) decides *when* a step runs; this module decides *what* running it
means. Voice calls always go through ``_runtime.call_voice``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ai_orchestration._limits import over_context
from ai_orchestration._runtime import _scope, call_voice, current_deadline
from ai_orchestration.consensus import Consensus, Vote
from ai_orchestration.context import Context
from ai_orchestration.engine._join import Decision, JoinState, Outcome
from ai_orchestration.errors import (
    AiOrchestrationError,
    BudgetExceededError,
    ConsensusError,
    InputError,
    LoopLimitError,
    StepError,
)
from ai_orchestration.tracing import ConsensusSpanData, SpanKind, SpanStatus, StepSpanData
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse
from ai_orchestration.workflow import (
    Adaptive,
    All,
    ConsensusSpec,
    Deadline,
    FirstSuccess,
    LoopSpec,
    MapSpec,
    Quorum,
    Step,
    StepKind,
    Workflow,
)

if TYPE_CHECKING:
    from ai_orchestration.consensus import ConfusionModel
    from ai_orchestration.engine._context import StepContext

__all__ = [
    "ABSTAINED",
    "Collected",
    "RouteOutcome",
    "abstention",
    "collect_votes",
    "picks_among_answers",
    "run_step_body",
    "to_request",
    "voice_reasons",
]


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    """A route step's output: the chosen labels and the value its branches receive."""

    labels: frozenset[str]
    value: Any


def to_request(value: Any, step: str) -> VoiceRequest:
    """Turn a step input into a voice request (str, mapping, Context, response, request)."""
    if isinstance(value, VoiceRequest):
        return value
    if isinstance(value, str):
        return VoiceRequest.from_prompt(value)
    if isinstance(value, Context):
        return VoiceRequest(messages=value.messages)
    if isinstance(value, VoiceResponse):
        return VoiceRequest.from_prompt(value.text)
    if isinstance(value, Consensus):
        return VoiceRequest.from_prompt(str(value.answer))
    if isinstance(value, Mapping) and isinstance(value.get("prompt"), str):
        choices = value.get("choices")
        return VoiceRequest.from_prompt(
            value["prompt"],
            instructions=value.get("instructions"),
            choices=tuple(str(c) for c in choices) if choices else None,
            metadata={k: v for k, v in value.items() if k not in {"prompt", "choices"}},
        )
    raise InputError(
        f"step {step!r}: cannot make a voice request from {type(value).__name__}; "
        "give a str, a mapping with 'prompt', a Context or a VoiceRequest"
    )


async def run_step_body(ctx: StepContext, step: Step, inp: Any) -> Any:
    """Run one step's body (without timeout/policies, which the engine applies)."""
    match step.kind:
        case StepKind.CALL:
            return await step.spec(inp)
        case StepKind.VOICE:
            return await call_voice(step.spec, to_request(inp, step.name))
        case StepKind.CONSENSUS:
            return await _run_consensus(ctx, step, inp)
        case StepKind.ROUTE:
            return _run_route(step, inp)
        case StepKind.MAP:
            return await _run_map(ctx, step, inp)
        case StepKind.LOOP:
            return await _run_loop(ctx, step, inp)
        case StepKind.WORKFLOW:
            return await ctx.run(step.spec, inp)
        case StepKind.AGENTS:
            return await step.spec.run(inp)
    raise AssertionError(f"unhandled step kind {step.kind}")  # pragma: no cover


def _run_route(step: Step, inp: Any) -> RouteOutcome:
    chosen = step.spec(inp)
    labels = frozenset([chosen] if isinstance(chosen, str) else chosen)
    return RouteOutcome(labels, inp)


async def _child(ctx: StepContext, segment: str, kind: str, fn: Any, inp: Any) -> Any:
    """Run one map item (``segment`` ``"[3]"``) / loop iteration (``"#2"``) in its own child
    span, or take its output from an earlier attempt when the run is being resumed."""
    path = ctx.path + segment
    done, value = ctx.completed(path)
    if done:
        return value
    trace = ctx.state.trace
    name = path.rsplit("/", 1)[-1]
    span = trace.start_span(SpanKind.STEP, name, StepSpanData(kind, inp, path=path), ctx.span)
    token = _scope.set((ctx.state, span))
    try:
        inner = ctx.child(segment, span)
        value = await (inner.run(fn, inp) if isinstance(fn, Workflow) else fn(inp))
    except asyncio.CancelledError as exc:
        trace.end_span(span, SpanStatus.CANCELLED, exc)
        raise
    except BaseException as exc:
        trace.end_span(span, SpanStatus.ERROR, exc)
        raise
    finally:
        _scope.reset(token)
    span.data.output = value  # type: ignore[attr-defined]
    trace.end_span(span)
    ctx.state.outputs[path] = value
    return value


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        return exc
    return group  # pragma: no cover


async def _run_map(ctx: StepContext, step: Step, inp: Any) -> list[Any]:
    spec: MapSpec = step.spec
    try:
        items = list(inp)
    except TypeError:
        raise InputError(
            f"step {step.name!r}: map needs a list input, got {type(inp).__name__}"
        ) from None
    results: list[Any] = [None] * len(items)
    sem = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None

    async def one(i: int, item: Any) -> None:
        if sem is None:
            results[i] = await _child(ctx, f"[{i}]", "map-item", spec.fn, item)
        else:
            async with sem:
                results[i] = await _child(ctx, f"[{i}]", "map-item", spec.fn, item)

    try:
        async with asyncio.TaskGroup() as tg:
            for i, item in enumerate(items):
                tg.create_task(one(i, item))
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    return results


async def _run_loop(ctx: StepContext, step: Step, inp: Any) -> Any:
    spec: LoopSpec = step.spec
    value = inp
    for i in range(1, spec.max_iterations + 1):
        value = await _child(ctx, f"#{i}", "loop-iteration", spec.body, value)
        try:
            done = spec.until(value)
        except Exception as exc:
            raise StepError(
                f"step {step.name!r}: until() raised {type(exc).__name__}: {exc}", step=step.name
            ) from exc
        if done:
            ctx.span.set("iterations", i)
            return value
    raise LoopLimitError(
        f"step {step.name!r}: loop reached max_iterations={spec.max_iterations} without "
        "its until() condition holding",
        step=step.name,
        max_iterations=spec.max_iterations,
    )


# --- consensus -------------------------------------------------------------------------------


def response_vote(voice: str, response: VoiceResponse) -> Vote:
    answer = response.parsed if response.parsed is not None else response.text
    return Vote(
        voice, answer, response.confidence, response.distribution, None,
        response.latency_s, response.usage.cost_usd,
    )  # fmt: skip


def picks_among_answers(voice: Voice) -> bool:
    """True for a voice that cannot write free text, only pick among given answers."""
    return getattr(voice, "picks_among_answers", False) is True


_NO_CANDIDATES = "no candidates to select among: no other voice gave a valid answer"
ABSTAINED = "abstained: "  # how an abstention's reason reads in the trace and errors
_ONE_CANDIDATE = "the other voices gave one answer, nothing to select among"
_ALL_ECHOES = "every answer only repeats words or numbers of the question"


def abstention(voice: str, why: str) -> Vote:
    """A voice's deliberate choice not to vote (``Vote.abstained``), with its reason."""
    return Vote(voice=voice, answer=None, error=ABSTAINED + why, abstained=True)


def _candidates(votes: Sequence[Vote]) -> list[str]:
    """The distinct valid answers (by ``normalise``), each in its first spelling, as text."""
    from ai_orchestration.consensus import normalise

    seen: dict[str, str] = {}
    for vote in votes:
        if vote.valid:
            key = normalise(vote.answer)
            if key and key not in seen:
                answer = vote.answer  # JSON text normalises like the object it encodes
                seen[key] = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    return list(seen.values())


@dataclass(slots=True)
class Collected:
    """What a consensus step's voices gave: votes, who was not awaited, who selected among what."""

    votes: list[Vote]
    not_awaited: list[str]
    selection: dict[str, list[str]] = field(default_factory=dict)
    answered_by: dict[str, str] = field(default_factory=dict)  # voice → its fallback that answered
    cut_short: bool = False  # a deadline ended the collection with voices still out


async def collect_votes(
    voices: tuple[Voice, ...],
    request: VoiceRequest,
    join: Any,
    *,
    earlier: Sequence[Vote] = (),
    voice_timeout: float | None = None,
    stop_at: float | None = None,
) -> Collected:
    """Ask ``voices`` concurrently until ``join`` is satisfied.

    Without ``request.choices``, voices that only pick among answers are asked after the
    others, to choose among the distinct valid answers of ``earlier`` and the other voices.
    ``voice_timeout`` bounds each call; at loop time ``stop_at`` the votes in are kept and
    the voices still out are cancelled (``Collected.cut_short``).
    """
    split = request.choices is None
    generators = tuple(v for v in voices if not (split and picks_among_answers(v)))
    selectors = tuple(v for v in voices if split and picks_among_answers(v))
    got = Collected([], [])
    enough = asyncio.Event()
    n = len(voices)
    waits_all = _waits_for_all(join)
    # Votes stop being awaited once the join is satisfied, or when every voice answered; a
    # join that can no longer be satisfied still waits: late votes may reach min_votes.
    joined = None if waits_all else JoinState(join, n)

    def record(vote: Vote) -> None:
        got.votes.append(vote)
        if joined is None:  # the end of the task group is the only signal
            return
        decision = joined.record(Outcome.OK if vote.ok else Outcome.FAILED)
        if decision is Decision.READY or len(got.votes) == n:
            enough.set()

    async def ask(voice: Voice, req: VoiceRequest) -> None:
        too_long = over_context(voice, req)
        if too_long is not None:  # not an error of the voice: it cannot take this input
            record(abstention(voice.name, too_long))
            return
        try:
            response = await call_voice(voice, req, timeout=voice_timeout)
        except BudgetExceededError:
            raise
        except AiOrchestrationError as exc:  # a failed voice is a visible vote, not a crash
            record(Vote(voice=voice.name, answer=None, error=str(exc)))
        else:
            record(response_vote(voice.name, response))
            fallback = getattr(response, "answered_by", None)  # a FallbackResponse
            if fallback:
                got.answered_by[voice.name] = fallback

    async def phases() -> None:
        from ai_orchestration.consensus import echoes

        async with asyncio.TaskGroup() as tg:
            for v in generators:
                tg.create_task(ask(v, request))
        if not selectors or enough.is_set():
            return
        rank = {v.name: i for i, v in enumerate(generators)}
        candidates = _candidates([*earlier, *sorted(got.votes, key=lambda v: rank[v.voice])])
        # a selector by likeness to the question would prefer answers that repeat it
        selectable = [c for c in candidates if not echoes(c, request.prompt)]
        got.selection = {v.name: selectable for v in selectors}
        if len(candidates) < 2 or not selectable:  # picking the only answer is no evidence
            why = _ONE_CANDIDATE if len(candidates) < 2 else _ALL_ECHOES
            for v in selectors:
                record(
                    abstention(v.name, why)
                    if candidates
                    else Vote(v.name, None, error=_NO_CANDIDATES)
                )
            return
        choosing = replace(request, choices=tuple(selectable))
        async with asyncio.TaskGroup() as tg:
            for v in selectors:
                tg.create_task(ask(v, choosing))

    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(phases())
            if not waits_all or stop_at is not None:
                got.cut_short = await _until_enough(task, enough, join, stop_at)
                task.cancel()
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    answered = {v.voice for v in got.votes}
    got.not_awaited = [v.name for v in voices if v.name not in answered]
    return got


async def _until_enough(
    task: asyncio.Task[None], enough: asyncio.Event, join: Any, stop_at: float | None
) -> bool:
    """Wait until the join has enough votes (or, waiting for all, ``task`` is done), its own
    deadline passes, or loop time ``stop_at`` comes; True when ``stop_at`` cut it short."""
    cutoff = stop_at
    if type(join) is Deadline:
        own = asyncio.get_running_loop().time() + join.seconds
        cutoff = own if cutoff is None else min(cutoff, own)
    try:
        async with asyncio.timeout_at(cutoff):
            await (asyncio.wait([task]) if _waits_for_all(join) else enough.wait())
    except TimeoutError:
        return cutoff == stop_at and not task.done()
    return False


async def collect_adaptive(
    voices: tuple[Voice, ...],
    request: VoiceRequest,
    plan: Adaptive,
    reliability: Mapping[str, float] | ConfusionModel,
) -> tuple[Collected, dict[str, Any]]:
    """Ask voices in waves until ``decide`` says more answers cannot matter; on free text,
    voices that only pick among answers come last.

    ``reliability``: voice → accuracy (one-coin), or a fitted ``BayesianFusion``.
    """
    from ai_orchestration.consensus import decide, order_voices

    by_name = {v.name: v for v in voices}
    n_classes = len(request.choices) if request.choices else None
    order = order_voices(
        by_name,
        cost=plan.cost,
        reliability=reliability,
        by="cost" if plan.order == "cost" else "value",
        n_classes=n_classes or 2,
    )
    if request.choices is None:
        order.sort(key=lambda name: picks_among_answers(by_name[name]))  # stable
    got = Collected([], [])
    reason = "every voice asked"
    while order:
        wave, order = order[: plan.wave], order[plan.wave :]
        more = await collect_votes(
            tuple(by_name[n] for n in wave), request, All(), earlier=got.votes
        )
        got.votes.extend(more.votes)
        got.selection.update(more.selection)
        got.answered_by.update(more.answered_by)
        if not order:
            break
        decision = decide(got.votes, order, reliability, target=plan.target, n_classes=n_classes)
        if decision.stop:
            reason = decision.reason
            break
    got.not_awaited = order
    report = {
        "asked": [v.voice for v in got.votes],
        "not_asked": order,
        "calls_saved": len(order),
        "cost_saved": sum(plan.cost.get(n, 0.0) for n in order),
        "stop_reason": reason,
    }
    return got, report


def voice_reasons(got: Collected) -> str:
    """One line per voice that gave no valid vote — its name and why, secrets scrubbed —
    for an error that says what held the run."""
    from ai_orchestration.tracing._redact import redact_text

    lines = []
    for vote in got.votes:
        if not vote.valid:
            reason = vote.error or "no answer"
            reason = reason.removeprefix(f"voice {vote.voice!r}: ")
            lines.append(f"\n  {vote.voice}: {redact_text(reason)}")
    if got.cut_short:
        lines += [f"\n  {v.voice}: answered" for v in got.votes if v.valid]
        lines += [f"\n  {name}: no answer before the deadline" for name in got.not_awaited]
    else:
        lines += [f"\n  {name}: not awaited" for name in got.not_awaited]
    return "".join(lines)


def _partial_cutoff() -> float | None:
    """When to stop collecting so the votes in can still be fused and recorded before the
    innermost deadline: 10 % of the time left before it, at most 0.25 s, earlier."""
    end = current_deadline()
    if end is None:
        return None
    left = end - asyncio.get_running_loop().time()
    return end - min(0.1 * left, 0.25)


def _fuse_options(options: Mapping[str, Any], request: VoiceRequest) -> dict[str, Any]:
    """The step's fusion options, told the request's options when it has them: the votes
    are then matched to the options exactly and fused over all of them."""
    if request.choices is None:
        return dict(options)
    return {"choices": request.choices, **options}


def _waits_for_all(join: Any) -> bool:
    return type(join) not in (Quorum, FirstSuccess, Deadline)


async def _run_consensus(ctx: StepContext, step: Step, inp: Any) -> Consensus:
    from ai_orchestration.consensus import fuse

    spec: ConsensusSpec = step.spec
    request = to_request(inp, step.name)
    extra: dict[str, Any] = {}
    options = dict(spec.options)
    voice_timeout = options.pop("voice_timeout", None)
    stop_at = _partial_cutoff() if options.pop("partial_on_timeout", False) else None
    if isinstance(spec.join, Adaptive):
        from ai_orchestration.consensus import BayesianFusion
        from ai_orchestration.consensus._fuse import reliability_map

        option = spec.options.get("reliability")
        rel: Mapping[str, float] | BayesianFusion = reliability_map(option)
        if isinstance(option, BayesianFusion) and option.fitted_:
            rel = option
        got, extra["adaptive"] = await collect_adaptive(spec.voices, request, spec.join, rel)
    else:
        got = await collect_votes(
            spec.voices, request, spec.join, voice_timeout=voice_timeout, stop_at=stop_at
        )
    if got.cut_short:
        extra["partial"] = {"reason": "deadline", "not_awaited": got.not_awaited}
    if got.selection:
        extra["selection"] = got.selection
    if got.answered_by:
        extra["answered_by"] = got.answered_by
    trace = ctx.state.trace
    data = ConsensusSpanData(method=spec.method, votes=got.votes)  # serialised when exported
    cspan = trace.start_span(SpanKind.CONSENSUS, step.name, data, ctx.span)
    try:
        try:
            result = fuse(got.votes, method=spec.method, **_fuse_options(options, request))
        except ConsensusError as exc:
            held = any(not v.valid for v in got.votes) or got.not_awaited
            if type(exc) is not ConsensusError or not held:
                raise
            raise ConsensusError(f"{exc}:{voice_reasons(got)}") from exc
    except BaseException as exc:
        trace.end_span(cspan, SpanStatus.ERROR, exc)
        raise
    if extra:
        result = replace(result, explanation={**result.explanation, **extra})
    data.answer, data.confidence = result.answer, result.confidence
    data.explanation = {
        "weights": dict(result.weights),
        "distribution": dict(result.distribution),
        "agreement": result.agreement,
        "abstained": result.abstained,
        "not_awaited": got.not_awaited,
        **result.explanation,
    }
    trace.end_span(cspan)
    return result
