"""Agents and context handoff.

An :class:`Agent` is a voice plus instructions plus the handoffs it may make. A
:class:`Team` runs agents from a start agent: each turn calls the agent's voice with the shared
:class:`~ai_orchestration.context.Context`, appends its answer, and either stops (the answer is
final) or hands off — to one agent, or to several at once whose branches run concurrently and
are joined back (``join``), after which control returns to the agent that fanned out.

A handoff passes the context by reference plus a small delta; filters (``keep_last``,
``drop_tool_messages``, ``redact``, ``summarise``) are applied per handoff.

>>> from ai_orchestration.testing import FunctionVoice
>>> a = Agent("a", FunctionVoice("va", lambda r: "done"))
>>> team = Team([a], start="a")
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ai_orchestration._runtime import _scope, call_voice
from ai_orchestration.context import Context, ContextFilter, Message
from ai_orchestration.engine._join import Decision, JoinState, Outcome, needed
from ai_orchestration.errors import JoinError, LoopLimitError, StepError, WorkflowError
from ai_orchestration.tracing import HandoffSpanData, SpanKind
from ai_orchestration.voices import ToolSpec, Voice, VoiceRequest, VoiceResponse
from ai_orchestration.workflow import All, Deadline, JoinPolicy, Step, StepKind

__all__ = ["Agent", "Handoff", "Team", "TeamResult", "summarise"]

TRANSFER_PREFIX = "transfer_to_"
Chooser = Callable[[Context, VoiceResponse], "str | Sequence[str] | None"]


@dataclass(frozen=True, slots=True)
class Handoff:
    """A permitted handoff to ``target``, with filters applied to the context it receives."""

    target: str
    filters: tuple[ContextFilter, ...] = ()


@dataclass(frozen=True)
class Agent:
    """A voice, its instructions, and where it may hand off.

    ``choose`` decides the next agent(s) from the context and the voice's response; by
    default a tool call named ``transfer_to_<agent>`` requests a handoff. Returning several
    names hands off in parallel; ``join`` joins those branches back.
    """

    name: str
    voice: Voice
    instructions: str = ""
    handoffs: tuple[Handoff | str, ...] = ()
    choose: Chooser | None = None
    join: JoinPolicy = All()  # noqa: RUF009 - frozen, shared safely

    @cached_property
    def routes(self) -> dict[str, Handoff]:
        """Permitted handoffs by target name (plain names become filterless handoffs)."""
        normalised = (Handoff(h) if isinstance(h, str) else h for h in self.handoffs)
        return {h.target: h for h in normalised}

    @cached_property
    def tools(self) -> tuple[ToolSpec, ...]:
        return tuple(
            ToolSpec(TRANSFER_PREFIX + n, f"Hand the conversation to {n}.") for n in self.routes
        )


@dataclass(frozen=True, slots=True)
class TeamResult:
    """Where a team run ended: the final context, the last agent, and the number of hops."""

    context: Context
    agent: str
    hops: int

    @property
    def answer(self) -> str:
        last = self.context.last
        return last.content if last is not None else ""


@dataclass(frozen=True)
class Team:
    """Agents that hand off to one another, starting at ``start``; at most ``max_hops``."""

    agents: Sequence[Agent]
    start: str
    max_hops: int = 20
    by_name: dict[str, Agent] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        problems = []
        by_name: dict[str, Agent] = {}
        for a in self.agents:
            if a.name in by_name:
                problems.append(f"agent {a.name!r} is defined twice")
            by_name[a.name] = a
        if self.start not in by_name:
            problems.append(f"start agent {self.start!r} is not in the team")
        for a in self.agents:
            for target in a.routes:
                if target not in by_name:
                    problems.append(f"agent {a.name!r} hands off to unknown agent {target!r}")
        if self.max_hops < 0:
            problems.append(f"max_hops must be >= 0, got {self.max_hops}")
        if problems:
            raise WorkflowError(f"team:{self.start}", problems)
        object.__setattr__(self, "by_name", by_name)

    def as_step(
        self, name: str, *, after: Sequence[str] = (), timeout: float | None = None
    ) -> Step:
        """This team as a workflow step (input: a prompt or Context; output: TeamResult)."""
        return Step(name, StepKind.AGENTS, self, tuple(after), timeout=timeout)

    async def run(self, start: Any) -> TeamResult:
        """Run from the start agent until an agent answers without handing off."""
        if isinstance(start, str):
            ctx = Context([Message("user", start)])
        elif isinstance(start, Context):
            ctx = start
        else:
            raise StepError(
                f"team {self.start!r}: input must be a prompt or a Context, "
                f"got {type(start).__name__}",
                step=self.start,
            )
        hops = [0]
        final_ctx, final_agent = await self._run_from(self.start, ctx, hops)
        return TeamResult(final_ctx, final_agent, hops[0])

    async def _run_from(self, name: str, ctx: Context, hops: list[int]) -> tuple[Context, str]:
        while True:
            agent = self.by_name[name]
            ctx, targets = await self._turn(agent, ctx)
            if not targets:
                return ctx, name
            if len(targets) == 1:
                ctx = (await self._handoff(agent, targets, ctx, hops))[0]
                name = targets[0]
                continue
            branches = await self._handoff(agent, targets, ctx, hops)
            ctx = await self._parallel(agent, targets, branches, ctx, hops)

    async def _turn(self, agent: Agent, ctx: Context) -> tuple[Context, list[str]]:
        request = VoiceRequest(
            messages=ctx.history, instructions=agent.instructions or None, tools=agent.tools
        )
        response = await call_voice(agent.voice, request)
        msg = Message("assistant", response.text, agent.name, response.tool_calls)
        ctx = ctx.extend(msg)
        if agent.choose is not None:
            chosen = agent.choose(ctx, response)
            targets = (
                [] if chosen is None else [chosen] if isinstance(chosen, str) else list(chosen)
            )
        else:
            targets = [
                c.name.removeprefix(TRANSFER_PREFIX)
                for c in response.tool_calls
                if c.name.startswith(TRANSFER_PREFIX)
            ]
        for t in targets:
            if t not in agent.routes:
                raise StepError(
                    f"agent {agent.name!r} tried to hand off to {t!r}, which is not one of its "
                    f"handoffs {list(agent.routes)}",
                    step=agent.name,
                )
        return ctx, targets

    async def _handoff(
        self, agent: Agent, targets: list[str], ctx: Context, hops: list[int]
    ) -> list[Context]:
        """Record one handoff span; return the (filtered) context each target receives."""
        hops[0] += 1
        if hops[0] > self.max_hops:
            raise LoopLimitError(
                f"team starting at {self.start!r} exceeded max_hops={self.max_hops} "
                f"({agent.name!r} -> {targets})",
                step=agent.name,
                max_iterations=self.max_hops,
            )
        out: list[Context] = []
        names: list[str] = []
        for t in targets:
            filtered = ctx
            for f in agent.routes[t].filters:
                result: Any = f(filtered)
                filtered = await result if inspect.isawaitable(result) else result
                names.append(getattr(f, "__name__", type(f).__name__))
            out.append(filtered)
        scope = _scope.get()
        if scope is not None:
            state, parent = scope
            data = HandoffSpanData(
                source=agent.name,
                targets=list(targets),
                messages=len(ctx),
                delta=ctx.last,
                filters=names,
            )
            name = f"{agent.name}->{'+'.join(targets)}"
            state.trace.end_span(state.trace.start_span(SpanKind.HANDOFF, name, data, parent))
        return out

    async def _parallel(
        self,
        agent: Agent,
        targets: list[str],
        branches: list[Context],
        base: Context,
        hops: list[int],
    ) -> Context:
        """Run branches concurrently, join them, merge their new messages into ``base``."""
        join = agent.join
        state = JoinState(join, len(targets))
        done: dict[int, Context] = {}
        errors: list[BaseException] = []
        enough = asyncio.Event()

        async def branch(i: int) -> None:
            try:
                done[i] = (await self._run_from(targets[i], branches[i], hops))[0]
            except Exception as exc:
                errors.append(exc)
                decision = state.record(Outcome.FAILED)
            else:
                decision = state.record(Outcome.OK)
            if decision is not Decision.WAIT:
                enough.set()

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(branch(i)) for i in range(len(targets))]
            try:
                async with asyncio.timeout(join.seconds if isinstance(join, Deadline) else None):
                    await enough.wait()
            except TimeoutError:
                state.deadline_passed()  # Deadline: take the branches that finished in time
            for t in tasks:
                t.cancel()
        if state.decision is not Decision.READY:
            raise JoinError(
                f"agent {agent.name!r}: parallel handoff to {targets} got {len(done)} of "
                f"{needed(join, len(targets))} branches",
                step=agent.name,
            ) from (errors[0] if errors else None)
        merged = base
        for i in sorted(done):
            merged = merged.extend(*done[i].since(branches[i]))
        return merged


def summarise(voice: Voice, *, keep_last: int = 4, instructions: str | None = None) -> Any:
    """An async handoff filter: replace all but the last ``keep_last`` messages by a summary
    written by ``voice``. Async: usable in ``Handoff(filters=...)``."""

    async def summarise_context(ctx: Context) -> Context:
        msgs = ctx.messages
        if len(msgs) <= keep_last:
            return ctx
        head, tail = msgs[: len(msgs) - keep_last], msgs[len(msgs) - keep_last :]
        transcript = "\n".join(f"{m.name or m.role}: {m.content}" for m in head)
        request = VoiceRequest.from_prompt(
            transcript,
            instructions=instructions or "Summarise this conversation in a few sentences.",
        )
        response = await call_voice(voice, request)
        summary = Message("system", f"Summary of earlier conversation: {response.text}")
        return ctx.replace_messages([summary, *tail])

    return summarise_context
