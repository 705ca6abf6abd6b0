"""Per-run state and the one place a voice is called (span, budget, usage, error mapping).

Steps reach the run they belong to through a contextvar scope, so a step function can call
``call_voice`` without being handed the engine; tasks created inside a step inherit the scope.
"""

from __future__ import annotations

import asyncio
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ai_orchestration._limits import over_context
from ai_orchestration.errors import (
    AiOrchestrationError,
    BudgetExceededError,
    InputError,
    MalformedResponseError,
    VoiceError,
    VoiceTimeoutError,
)
from ai_orchestration.stats import record_call
from ai_orchestration.tracing import Span, SpanKind, SpanStatus, Trace, VoiceSpanData
from ai_orchestration.tracing._redact import redact_response
from ai_orchestration.voices import Usage, Voice, VoiceRequest, VoiceResponse
from ai_orchestration.voices._types import estimate_tokens

__all__ = [
    "Budget",
    "RunState",
    "call_voice",
    "current_deadline",
    "current_run",
    "deadline_at",
    "estimate_usage",
    "remaining_time",
    "run_scope",
]


@dataclass(frozen=True, slots=True)
class Budget:
    """Per-run limits; ``None`` means unlimited. Exceeding one raises ``BudgetExceededError``."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None
    max_seconds: float | None = None


class VoiceUsage(Mapping[str, Usage]):
    """A run's usage per voice: a mapping summed from its calls on first access (nothing is
    summed for runs whose per-voice usage nobody reads)."""

    __slots__ = ("_calls", "_sums")

    def __init__(self, calls: list[tuple[str, Usage]]) -> None:
        self._calls = calls
        self._sums: dict[str, Usage] | None = None

    def _summed(self) -> dict[str, Usage]:
        if self._sums is None:
            sums: dict[str, Usage] = {}
            for voice, usage in self._calls:
                per = sums.get(voice)
                if per is None:
                    sums[voice] = per = Usage()
                per.add(usage)
            self._sums = sums
        return self._sums

    def __getitem__(self, voice: str) -> Usage:
        return self._summed()[voice]

    def __iter__(self) -> Iterator[str]:
        return iter(self._summed())

    def __len__(self) -> int:
        return len(self._summed())

    def __repr__(self) -> str:
        return f"VoiceUsage({self._summed()!r})"


def _would_exceed(
    run_id: str, budget: str, limit: float, amounts: tuple[float, float, float]
) -> BudgetExceededError:
    """The error for a call whose estimate, with what is used and reserved, passes ``limit``."""
    show: Callable[[float], str] = str
    if budget == "tokens":
        what, verb = f"token budget {limit}", "use"
    else:
        what, verb, show = f"cost budget ${limit}", "cost", "${:.6f}".format
    used, held, upcoming = (show(a) for a in amounts)
    return BudgetExceededError(
        f"run {run_id}: {what} would be exceeded: {used} used, {held} reserved by calls in "
        f"flight, the next call may {verb} {upcoming}",
        budget=budget,
        limit=limit,
    )


class RunState:
    """What one run accumulates: its trace, usage totals (overall and per voice), budget, and
    what calls in flight have reserved of the budget."""

    __slots__ = (
        "_calls",
        "budget",
        "completed",
        "outputs",
        "reserved",
        "run_id",
        "started",
        "trace",
        "usage",
    )

    def __init__(
        self,
        run_id: str,
        trace: Trace,
        budget: Budget | None = None,
        completed: Mapping[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.trace = trace
        self.budget = budget
        self.completed: Mapping[str, Any] = completed or {}  # resume: step path → output
        self.outputs: dict[str, Any] = {}  # every finished execution: step path → output
        self.usage = Usage()
        self.reserved = Usage()  # the estimates of the calls in flight
        self._calls: list[tuple[str, Usage]] = []
        self.started = time.monotonic()

    def record(self, voice: str, usage: Usage) -> None:
        self.usage.add(usage)  # the totals budgets check; per voice is summed when asked
        self._calls.append((voice, usage))

    @property
    def voice_usage(self) -> VoiceUsage:
        """Usage per voice, summed over the run's calls when first read."""
        return VoiceUsage(self._calls)

    def reserve(self, estimate: Usage) -> None:
        """Take ``estimate`` (one call's most likely use) from the budget before the call
        starts, or raise ``BudgetExceededError`` if, with what is used and what calls in
        flight reserved, it could pass a limit. ``release`` gives it back when the call ends."""
        b = self.budget
        if b is None:
            return
        u, r = self.usage, self.reserved
        if b.max_calls is not None and u.calls + r.calls + estimate.calls > b.max_calls:
            raise BudgetExceededError(
                f"run {self.run_id}: voice-call budget of {b.max_calls} used up"
                + (f" ({r.calls} call(s) in flight)" if r.calls else ""),
                budget="calls",
                limit=b.max_calls,
            )
        for budget, limit, used, held, upcoming in (
            ("tokens", b.max_tokens, u.total_tokens, r.total_tokens, estimate.total_tokens),
            ("cost_usd", b.max_cost_usd, u.cost_usd, r.cost_usd, estimate.cost_usd),
        ):
            if limit is not None and used + held + upcoming > limit:
                raise _would_exceed(self.run_id, budget, limit, (used, held, upcoming))
        self.check_budget()
        r.add(estimate)

    def release(self, estimate: Usage) -> None:
        """A call ended: its reservation is settled by the usage it recorded."""
        r = self.reserved
        r.input_tokens -= estimate.input_tokens
        r.output_tokens -= estimate.output_tokens
        r.cost_usd -= estimate.cost_usd
        r.calls -= estimate.calls

    def check_budget(self) -> None:
        """Raise ``BudgetExceededError`` if what the run used passed a limit (an estimate
        can be low) or its time budget ran out."""
        b = self.budget
        if b is None:
            return
        u = self.usage
        if b.max_tokens is not None and u.total_tokens > b.max_tokens:
            raise BudgetExceededError(
                f"run {self.run_id}: token budget {b.max_tokens} exceeded ({u.total_tokens})",
                budget="tokens",
                limit=b.max_tokens,
            )
        if b.max_cost_usd is not None and u.cost_usd > b.max_cost_usd:
            raise BudgetExceededError(
                f"run {self.run_id}: cost budget ${b.max_cost_usd} exceeded (${u.cost_usd:.6f})",
                budget="cost_usd",
                limit=b.max_cost_usd,
            )
        if b.max_seconds is not None and time.monotonic() - self.started > b.max_seconds:
            raise BudgetExceededError(
                f"run {self.run_id}: time budget of {b.max_seconds}s exceeded",
                budget="seconds",
                limit=b.max_seconds,
            )


def estimate_usage(voice: Voice, request: VoiceRequest) -> Usage:
    """What one call of ``voice`` may use: the voice's own ``estimate_usage(request)`` when it
    has one (HTTP adapters price it from their price table), else the request's tokens and
    output limit at no cost."""
    estimate = getattr(voice, "estimate_usage", None)
    found = estimate(request) if callable(estimate) else None
    if isinstance(found, Usage):
        return Usage(found.input_tokens, found.output_tokens, found.cost_usd, 1)
    return Usage(estimate_tokens(request), 0, 0.0, 1)


_scope: ContextVar[tuple[RunState, Span] | None] = ContextVar("ai_orch_run", default=None)


def current_run() -> tuple[RunState, Span] | None:
    """The run and span the current task belongs to, or None outside a run."""
    return _scope.get()


@contextmanager
def run_scope(state: RunState, span: Span) -> Iterator[None]:
    token = _scope.set((state, span))
    try:
        yield
    finally:
        _scope.reset(token)


# The innermost deadline in event-loop time. Run and step timeouts set it, and so do the
# deadline policies: retries, hedges and nested steps all see the same end time.
_deadline: ContextVar[float | None] = ContextVar("ai_orch_deadline", default=None)


def current_deadline() -> float | None:
    """The innermost deadline in event-loop time, or None."""
    return _deadline.get()


def remaining_time() -> float | None:
    """Seconds left before the innermost deadline (may be negative), or None."""
    end = _deadline.get()
    if end is None:
        return None
    return end - asyncio.get_running_loop().time()


class deadline_at:  # lower case: used like a function, ``with deadline_at(end) as end:``
    """Set the deadline to ``end`` (event-loop time), never later than an enclosing one;
    yields the effective end. A class, not a generator: it sits on every voice call that has
    a deadline policy."""

    __slots__ = ("_token", "end")

    def __init__(self, end: float) -> None:
        outer = _deadline.get()
        self.end = outer if outer is not None and outer < end else end

    def __enter__(self) -> float:
        self._token = _deadline.set(self.end)
        return self.end

    def __exit__(self, *exc: object) -> None:
        _deadline.reset(self._token)


def _unexpected(voice: str, exc: Exception) -> VoiceError:
    return VoiceError(f"{type(exc).__name__}: {exc}", voice=voice)


def _probability(x: object) -> bool:
    """A number in [0, 1] (not NaN): a float, an int, or a numpy scalar."""
    if type(x) is float:
        return 0.0 <= x <= 1.0
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    return 0.0 <= float(x) <= 1.0


def checked_response(voice: str, response: object) -> VoiceResponse:
    """``response`` if it is a well-formed ``VoiceResponse``, else ``MalformedResponseError``
    naming what is wrong: one voice's bad answer is its own failure, never the run's."""
    if not isinstance(response, VoiceResponse):
        what = "None" if response is None else f"a {type(response).__name__}"
        raise MalformedResponseError(f"returned {what}, not a VoiceResponse", voice=voice)
    if not isinstance(response.text, str):
        raise MalformedResponseError(
            f"response text is a {type(response.text).__name__}, not a str", voice=voice
        )
    if not isinstance(response.usage, Usage):
        raise MalformedResponseError("response usage is not a Usage", voice=voice)
    c = response.confidence
    if c is not None and not _probability(c):
        raise MalformedResponseError(f"confidence {c!r} is not in [0, 1]", voice=voice)
    dist = response.distribution
    if dist is not None and not (
        isinstance(dist, Mapping)
        and all(_probability(p) for p in dist.values())
        and sum(dist.values()) > 0
    ):
        raise MalformedResponseError(
            f"distribution {_short(dist)} is not probabilities in [0, 1]", voice=voice
        )
    return response


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _cancelled_by_caller() -> bool:
    """True when the current task is being cancelled; a ``CancelledError`` a voice raises of
    its own accord, with nobody cancelling it, is that voice's failure instead."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _respond(voice: Voice, request: VoiceRequest, timeout: float | None) -> VoiceResponse:
    """``voice.respond`` with its answer checked, within ``timeout`` seconds when given
    (else ``VoiceTimeoutError``); a ``CancelledError`` nobody asked for is the voice's failure
    (``VoiceError``), not a cancellation of the run."""
    cm = None
    try:
        if timeout is None:
            response = await voice.respond(request)
        else:
            async with asyncio.timeout(timeout) as cm:
                response = await voice.respond(request)
    except TimeoutError as exc:
        if cm is None or not cm.expired():
            raise  # the voice's own TimeoutError: call_voice maps it
        raise VoiceTimeoutError(f"no answer within {timeout:g}s", voice=voice.name) from exc
    except asyncio.CancelledError as exc:
        if _cancelled_by_caller():
            raise
        raise VoiceError("raised CancelledError without being cancelled", voice=voice.name) from exc
    return redact_response(checked_response(voice.name, response))  # no echoed key goes on


async def call_voice(
    voice: Voice, request: VoiceRequest, *, timeout: float | None = None
) -> VoiceResponse:
    """Call ``voice`` inside the current run: opens its span, enforces the budget, records
    usage and maps unexpected exceptions to ``VoiceError``; ``timeout`` bounds this one call
    (``VoiceTimeoutError``, a failed call). Outside a run it just maps errors and the timeout.
    """
    scope = _scope.get()
    name = voice.name
    if scope is None:
        try:
            return await _respond(voice, request, timeout)
        except Exception as exc:
            if isinstance(exc, AiOrchestrationError):
                raise
            raise _unexpected(name, exc) from exc
    too_long = over_context(voice, request)
    if too_long is not None:
        raise InputError(f"voice {name!r}: {too_long}")
    state, parent = scope
    budget = state.budget
    reserved = None
    if budget is not None:
        reserved = estimate_usage(voice, request)
        state.reserve(reserved)
    trace = state.trace
    data = VoiceSpanData(name, "", request.prompt)
    span = trace.start_span(SpanKind.VOICE, name, data, parent)
    token = _scope.set((state, span))
    started = time.perf_counter()
    try:
        response = await _respond(voice, request, timeout)
    except asyncio.CancelledError as exc:
        trace.end_span(span, SpanStatus.CANCELLED, exc)
        raise
    except Exception as exc:
        state.record(name, Usage(calls=1))
        record_call(name, time.perf_counter() - started, False)
        err = exc if isinstance(exc, AiOrchestrationError) else _unexpected(name, exc)
        trace.end_span(span, SpanStatus.ERROR, err)
        if err is exc:
            raise
        raise err from exc
    finally:
        _scope.reset(token)
        if reserved is not None:
            state.release(reserved)
    usage = response.usage
    if usage.calls == 0:
        usage = Usage(usage.input_tokens, usage.output_tokens, usage.cost_usd, 1)
    state.record(name, usage)
    record_call(name, time.perf_counter() - started, True, usage.cost_usd)
    data.model = response.model
    data.output = response.text if response.parsed is None else response.parsed
    data.usage = usage  # serialised when exported
    data.finish_reason = response.finish_reason
    trace.end_span(span)
    if budget is not None:
        state.check_budget()
    return response
