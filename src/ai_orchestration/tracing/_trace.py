"""A run's trace (its spans in start order), the span-processor protocol and the fan-out.

Processors are isolated: one that raises is reported (on ``Trace.processor_errors`` and once
in the log) and never fails the run or keeps the other processors from their spans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ai_orchestration.tracing._redact import redact_text
from ai_orchestration.tracing._spans import Span, SpanData, SpanKind, SpanStatus

__all__ = ["NoopTrace", "SpanProcessor", "Trace", "flush_processors"]


_log = logging.getLogger("ai_orchestration.tracing")
_logged: set[tuple[str, str]] = set()  # (processor type, hook) already logged in this process
_MAX_ERRORS = 20  # kept per trace; the rest are only counted


class SpanProcessor(Protocol):
    """Receives spans as runs happen. The hooks must be fast: they run on the event loop
    (do I/O behind, as ``JsonlAuditProcessor`` does).

    ``on_trace_start``, ``force_flush`` and ``shutdown`` are optional: the fan-out calls them
    when a processor defines them. ``force_flush`` waits until what was handed over is
    exported; ``shutdown`` does that and releases what the processor holds.
    """

    def on_trace_start(self, trace: Trace) -> None: ...

    def on_span_start(self, span: Span) -> None: ...

    def on_span_end(self, span: Span) -> None: ...

    def on_trace_end(self, trace: Trace) -> None: ...

    def force_flush(self) -> None: ...

    def shutdown(self) -> None: ...


def flush_processors(processors: Sequence[object], *, shutdown: bool = False) -> None:
    """Call each processor's ``force_flush`` (or ``shutdown``) when it has one, in order;
    a processor that raises does not keep the others from theirs, and the first error is
    raised at the end."""
    first: Exception | None = None
    for p in processors:
        hook = getattr(p, "shutdown" if shutdown else "force_flush", None)
        if hook is None:
            continue
        try:
            hook()
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


class Trace:
    """Every span of one run, in start order. ``path`` is the audit file, when one is written."""

    __slots__ = (
        "_processors",
        "path",
        "processor_error_count",
        "processor_errors",
        "run_id",
        "spans",
        "workflow",
    )

    enabled = True

    def __init__(
        self, run_id: str, workflow: str, processors: Sequence[SpanProcessor] = ()
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.spans: list[Span] = []
        self._processors = tuple(processors)
        self.path: Path | None = None
        self.processor_errors: list[str] = []  # the first few failures, "Type.hook: error"
        self.processor_error_count = 0
        for p in self._processors:
            hook = getattr(p, "on_trace_start", None)
            if hook is not None:
                try:
                    hook(self)
                except Exception as exc:
                    self._processor_failed(p, "on_trace_start", exc)

    def _processor_failed(self, processor: object, hook: str, exc: Exception) -> None:
        where = f"{type(processor).__name__}.{hook}"
        text = redact_text(f"{where}: {type(exc).__name__}: {exc}")
        self.processor_error_count += 1
        if len(self.processor_errors) < _MAX_ERRORS:
            self.processor_errors.append(text)
        if (type(processor).__name__, hook) not in _logged:
            _logged.add((type(processor).__name__, hook))
            _log.warning("span processor failed (run %s): %s", self.run_id, text)

    def start_span(
        self, kind: SpanKind, name: str, data: SpanData, parent: Span | None = None
    ) -> Span:
        span = Span(self.run_id, kind, name, data, parent.span_id if parent is not None else None)
        self.spans.append(span)
        for p in self._processors:
            try:
                p.on_span_start(span)
            except Exception as exc:
                self._processor_failed(p, "on_span_start", exc)
        return span

    def end_span(
        self, span: Span, status: SpanStatus = SpanStatus.OK, error: BaseException | None = None
    ) -> None:
        span.end_ns = time.perf_counter_ns()
        span.status = status
        if error is not None:
            span.error = f"{type(error).__name__}: {error}"
        for p in self._processors:
            try:
                p.on_span_end(span)
            except Exception as exc:
                self._processor_failed(p, "on_span_end", exc)

    def finish(self) -> None:
        """Close any span left running (as cancelled) and hand the trace to processors."""
        for span in self.spans:
            if span.status is SpanStatus.RUNNING:
                self.end_span(span, SpanStatus.CANCELLED)
        for p in self._processors:
            try:
                p.on_trace_end(self)
            except Exception as exc:
                self._processor_failed(p, "on_trace_end", exc)

    @property
    def root(self) -> Span | None:
        return self.spans[0] if self.spans else None

    def find(self, kind: SpanKind | None = None, name: str | None = None) -> list[Span]:
        return [
            s
            for s in self.spans
            if (kind is None or s.kind is kind) and (name is None or s.name == name)
        ]

    def children(self, span: Span) -> list[Span]:
        return [s for s in self.spans if s.parent_id == span.span_id]

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.spans]


class _NoopData(SpanData):
    """Payload of the shared no-op span: the engine writes outputs/usage to it; they vanish."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        return None


class _NoopSpan(Span):
    __slots__ = ()

    def set(self, key: str, value: Any) -> None:
        return None


class NoopTrace(Trace):
    """Tracing off: spans cost one shared object and nothing else."""

    __slots__ = ("_span",)
    enabled = False

    def __init__(self, run_id: str, workflow: str) -> None:
        super().__init__(run_id, workflow)
        self._span = _NoopSpan(run_id, SpanKind.RUN, "noop", _NoopData(), None)

    def start_span(
        self, kind: SpanKind, name: str, data: SpanData, parent: Span | None = None
    ) -> Span:
        return self._span

    def end_span(
        self, span: Span, status: SpanStatus = SpanStatus.OK, error: BaseException | None = None
    ) -> None:
        return None

    def finish(self) -> None:
        return None
