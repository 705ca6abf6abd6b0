"""A run's trace (its spans in start order) and the span-processor protocol."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ai_orchestration.tracing._spans import Span, SpanData, SpanKind, SpanStatus

__all__ = ["NoopTrace", "SpanProcessor", "Trace"]


class SpanProcessor(Protocol):
    """Receives spans as runs happen. Must be fast: it runs on the event loop."""

    def on_span_start(self, span: Span) -> None: ...

    def on_span_end(self, span: Span) -> None: ...

    def on_trace_end(self, trace: Trace) -> None: ...


class Trace:
    """Every span of one run, in start order. ``path`` is the audit file, when one is written."""

    __slots__ = ("_processors", "path", "run_id", "spans", "workflow")

    enabled = True

    def __init__(
        self, run_id: str, workflow: str, processors: Sequence[SpanProcessor] = ()
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.spans: list[Span] = []
        self._processors = tuple(processors)
        self.path: Path | None = None

    def start_span(
        self, kind: SpanKind, name: str, data: SpanData, parent: Span | None = None
    ) -> Span:
        span = Span(self.run_id, kind, name, data, parent.span_id if parent is not None else None)
        self.spans.append(span)
        for p in self._processors:
            p.on_span_start(span)
        return span

    def end_span(
        self, span: Span, status: SpanStatus = SpanStatus.OK, error: BaseException | None = None
    ) -> None:
        span.end_ns = time.perf_counter_ns()
        span.status = status
        if error is not None:
            span.error = f"{type(error).__name__}: {error}"
        for p in self._processors:
            p.on_span_end(span)

    def finish(self) -> None:
        """Close any span left running (as cancelled) and hand the trace to processors."""
        for span in self.spans:
            if span.status is SpanStatus.RUNNING:
                self.end_span(span, SpanStatus.CANCELLED)
        for p in self._processors:
            p.on_trace_end(self)

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
