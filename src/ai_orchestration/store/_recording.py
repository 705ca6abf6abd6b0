"""Run recording: every run, answered or failed, becomes one store row.

``RunRecorder`` is a span processor: at a trace's end it turns the trace (the run span's
input, output, usage and error; the consensus votes; the voice-call spans) into one
``RunRecord``, so ``AiOrchestration.process``, ``Workflow.run(processors=[recorder])`` and
``ai-orchestration run`` are recorded by the same code, and a run's voice calls come from one
source, its spans. Rows are written by one thread per recorder (write-behind, like the
audit), queued at the trace's end with no await before it, so a caller that cancels a run
cannot leave an audit file without its row; ``flush`` waits for them.
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
    from ai_orchestration.store import RunRecord, Store, VoiceCall

__all__ = ["RunRecorder", "TraceCatcher", "trace_record", "with_voices"]


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

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def force_flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


class RunRecorder:
    """A span processor that records each run it sees in a store, on its own thread, in
    order. ``store`` is called (on that thread) when the first row is written."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._by_run: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def on_span_start(self, span: Any) -> None:
        return None

    def on_span_end(self, span: Any) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        record = trace_record(trace)
        if record is not None:
            future = self.submit(record)
            with self._lock:
                self._by_run[trace.run_id] = future

    def written(self, run_id: str) -> concurrent.futures.Future[None] | None:
        """The write of ``run_id``'s row (taken: asked once), or None if none was queued."""
        with self._lock:
            return self._by_run.pop(run_id, None)

    def raise_failures(self) -> None:
        """Wait for every row, then raise the ``StoreError`` of the first that failed (rows
        taken by ``written`` are their waiters' to report)."""
        self.flush()
        with self._lock:
            futures, self._by_run = list(self._by_run.values()), {}
        for future in futures:
            future.result()

    def force_flush(self) -> None:
        self.flush()

    def shutdown(self) -> None:
        self.close()

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


def trace_record(trace: Trace) -> RunRecord | None:
    """The store row of a finished run, from its trace alone (None for a trace with no run
    span: tracing was off)."""
    from ai_orchestration.consensus import Consensus
    from ai_orchestration.store import RunRecord

    root = trace.root
    if root is None or root.kind is not SpanKind.RUN:
        return None
    data = root.data
    output = getattr(data, "output", None)
    votes: list[dict[str, Any]] = []
    for span in trace.find(SpanKind.CONSENSUS):
        votes = [v.to_dict() for v in getattr(span.data, "votes", ())]
    failed = root.status is not SpanStatus.OK
    consensus = output if isinstance(output, Consensus) and not failed else None
    answer = consensus.answer if consensus is not None else None if failed else _plain(output)
    return RunRecord(
        run_id=trace.run_id,
        workflow=trace.workflow,
        input=_plain(getattr(data, "input", None)),
        answer=answer,
        confidence=consensus.confidence if consensus is not None else 0.0,
        abstained=consensus.abstained if consensus is not None else False,
        votes=votes,
        usage=getattr(data, "usage", None) or Usage().to_dict(),
        trace_path=str(trace.path) if trace.path else None,
        created_at=time.time(),
        calls=voice_calls(trace),
        error=_reason(trace, root.error or root.status.value) if failed else None,
        duration_s=root.duration_s,
    )


def _plain(value: Any) -> Any:
    """What a row keeps of a run's input or output: a chat ``Context`` as its ``messages``,
    a result object as its ``to_dict()``, data as it is."""
    from ai_orchestration.context import Context

    if isinstance(value, Context):
        return {"messages": [m.to_dict() for m in value.messages]}
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _reason(trace: Trace, error: str) -> str:
    """A failed run's error as its message (the span keeps ``Type: message``); a run
    deadline says, per voice call, who answered and who held the run."""
    kind, _, message = error.partition(": ")
    lines = _voice_lines(trace) if kind == "DeadlineExceededError" else []
    if lines and message.startswith(f"run {trace.run_id} "):
        return f"{message}:" + "".join(lines)
    return message or kind


def with_voices(error: BaseException, trace: Trace | None) -> BaseException:
    """A run's ``DeadlineExceededError`` extended by one line per voice call: who answered,
    who failed and why, who held the run (no answer before the deadline); other errors as
    they are."""
    from ai_orchestration.errors import DeadlineExceededError

    if not isinstance(error, DeadlineExceededError) or error.scope != "run" or trace is None:
        return error
    lines = _voice_lines(trace)
    if not lines:
        return error
    extended = DeadlineExceededError(
        f"{error}:" + "".join(lines), scope=error.scope, timeout=error.timeout
    )
    extended.run_id = getattr(error, "run_id", None)  # type: ignore[attr-defined]
    return extended


def _voice_lines(trace: Trace) -> list[str]:
    from ai_orchestration.tracing._redact import redact_text

    lines = []
    for span in trace.find(SpanKind.VOICE):
        if span.status is SpanStatus.OK:
            lines.append(f"\n  {span.name}: answered")
        elif span.status is SpanStatus.ERROR:
            lines.append(f"\n  {span.name}: {redact_text(span.error or 'failed')}")
        else:
            lines.append(f"\n  {span.name}: no answer before the deadline")
    return lines


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
