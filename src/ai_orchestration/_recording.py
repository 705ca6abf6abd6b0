"""Run recording for the facade: every run, answered or failed, becomes one store row.

Rows are written by one thread per ``AiOrchestration`` (write-behind, like the audit). A row
is queued with no await between the end of the run and the queueing, so a caller that
cancels ``aprocess`` cannot leave an audit file without its row; queued rows are written
even then, and ``flush`` waits for them (``feedback`` reads only after it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ai_orchestration.tracing import SpanKind, SpanStatus, Trace
from ai_orchestration.voices import Usage

if TYPE_CHECKING:
    from ai_orchestration.consensus import Consensus
    from ai_orchestration.store import RunRecord, Store, VoiceCall

__all__ = ["RunRecorder", "TraceCatcher", "failure_record", "success_record", "with_voices"]


class TraceCatcher:
    """A span processor that keeps the trace of the one run it is given."""

    __slots__ = ("trace",)

    def __init__(self) -> None:
        self.trace: Trace | None = None

    def on_span_start(self, span: Any) -> None:
        return None

    def on_span_end(self, span: Any) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        self.trace = trace


class RunRecorder:
    """Writes run records to a store on its own thread, in order."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, record: RunRecord) -> concurrent.futures.Future[None]:
        """Queue ``record``; it is written even if whoever waits for it stops waiting."""
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="ai-orchestration-store"
                )
            future = self._pool.submit(lambda: self._store().record_run(record))
            self._pending.add(future)
        future.add_done_callback(self._written)
        return future

    def _written(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def wait(self, future: concurrent.futures.Future[None], until: float | None) -> None:
        """Wait for ``future`` until loop time ``until`` at most (then it stays queued, and
        ``flush`` waits for it); a failed write raises its ``StoreError``. Cancelling the
        wait never cancels the write, and a loop closed meanwhile is no error."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def relay(finished: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, done, finished)

        future.add_done_callback(relay)
        try:
            async with asyncio.timeout_at(until):
                await asyncio.shield(done)
        except TimeoutError:
            done.add_done_callback(_retrieve)

    def flush(self) -> None:
        """Wait until every queued record is written (errors are the waiters' to report)."""
        with self._lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _settle(done: asyncio.Future[None], finished: concurrent.futures.Future[None]) -> None:
    if done.done():
        return
    error = finished.exception()
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # nobody awaits it any more: do not log "never retrieved"


def success_record(
    run_id: str, workflow: str, inp: Any, consensus: Consensus, usage: Usage, trace: Trace
) -> RunRecord:
    from ai_orchestration.store import RunRecord

    return RunRecord(
        run_id=run_id,
        workflow=workflow,
        input=inp,
        answer=consensus.answer,
        confidence=consensus.confidence,
        abstained=consensus.abstained,
        votes=[v.to_dict() for v in consensus.votes],
        usage=usage.to_dict(),
        trace_path=str(trace.path) if trace.path else None,
        created_at=time.time(),
        calls=voice_calls(trace),
    )


def failure_record(
    run_id: str, workflow: str, inp: Any, error: BaseException, trace: Trace | None
) -> RunRecord:
    """A failed run: no answer, its error, the votes that were cast and the calls made."""
    from ai_orchestration.store import RunRecord

    votes: list[dict[str, Any]] = []
    usage: dict[str, Any] = Usage().to_dict()
    if trace is not None:
        for span in trace.find(SpanKind.CONSENSUS):
            votes = [v.to_dict() for v in getattr(span.data, "votes", ())]
        if trace.root is not None and getattr(trace.root.data, "usage", None):
            usage = trace.root.data.usage  # type: ignore[attr-defined]
    reason = str(error) if str(error) else type(error).__name__
    return RunRecord(
        run_id=run_id,
        workflow=workflow,
        input=inp,
        answer=None,
        confidence=0.0,
        abstained=False,
        votes=votes,
        usage=usage,
        trace_path=str(trace.path) if trace is not None and trace.path else None,
        created_at=time.time(),
        calls=voice_calls(trace) if trace is not None else [],
        error=reason,
    )


def with_voices(error: BaseException, trace: Trace | None) -> BaseException:
    """A run's ``DeadlineExceededError`` extended by one line per voice call: who answered,
    who failed and why, who held the run (no answer before the deadline); other errors as
    they are."""
    from ai_orchestration.errors import DeadlineExceededError
    from ai_orchestration.tracing._redact import redact_text

    if not isinstance(error, DeadlineExceededError) or error.scope != "run" or trace is None:
        return error
    lines = []
    for span in trace.find(SpanKind.VOICE):
        if span.status is SpanStatus.OK:
            lines.append(f"\n  {span.name}: answered")
        elif span.status is SpanStatus.ERROR:
            lines.append(f"\n  {span.name}: {redact_text(span.error or 'failed')}")
        else:
            lines.append(f"\n  {span.name}: no answer before the deadline")
    if not lines:
        return error
    extended = DeadlineExceededError(
        f"{error}:" + "".join(lines), scope=error.scope, timeout=error.timeout
    )
    extended.run_id = getattr(error, "run_id", None)  # type: ignore[attr-defined]
    return extended


def voice_calls(trace: Trace) -> list[VoiceCall]:
    """The run's finished voice calls (cancelled ones say nothing about the voice)."""
    done = (SpanStatus.OK, SpanStatus.ERROR)
    return [
        (s.name, s.duration_s, s.status is SpanStatus.OK, _cost(s.data))
        for s in trace.spans
        if s.kind is SpanKind.VOICE and s.status in done
    ]


def _cost(data: Any) -> float:
    usage = getattr(data, "usage", None)
    return usage.cost_usd if isinstance(usage, Usage) else 0.0
