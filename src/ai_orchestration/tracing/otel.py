"""Export run traces to OpenTelemetry: every span becomes an OTel span under its parent.

Vendor-neutral: whatever exporter the tracer provider has (OTLP, console, Jaeger, …) gets
the run, its steps, voice calls, consensus and handoffs. A run started inside a caller's own
OTel span (e.g. a web request) nests under it. Attributes are the span's record after the
audit's redaction — secrets always, inputs/outputs and the voices' answers with
``redact_io`` — flattened to ``ai_orchestration.<field>``; voice spans also carry the GenAI
conventions ``gen_ai.response.model`` and ``gen_ai.usage.input_tokens`` / ``output_tokens``.
Needs the ``otel`` extra.

>>> from ai_orchestration.tracing.otel import OpenTelemetryProcessor  # doctest: +SKIP
>>> run = await workflow.run(x, processors=[OpenTelemetryProcessor()])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from ai_orchestration.errors import ConfigError
from ai_orchestration.tracing._processors import serialise_span
from ai_orchestration.tracing._spans import Span, SpanKind, SpanStatus

if TYPE_CHECKING:
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import TracerProvider

    from ai_orchestration.tracing._trace import Trace

__all__ = ["OpenTelemetryProcessor"]

_PREFIX = "ai_orchestration."
_Primitive = str | bool | int | float


class OpenTelemetryProcessor:
    """A span processor that mirrors each run into OpenTelemetry spans.

    ``tracer_provider`` defaults to the global one. ``max_attribute_chars`` bounds the JSON
    text of a structured attribute (a long prompt or context), so exports stay small.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        redact_io: bool = False,
        max_attribute_chars: int = 4096,
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ConfigError(
                "opentelemetry is missing; install 'ai-orchestration[otel]'", field="tracing.otel"
            ) from exc
        self._trace_api = trace
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("ai_orchestration", tracer_provider=tracer_provider)
        self.redact_io = redact_io
        self.max_attribute_chars = max_attribute_chars
        self._open: dict[int, OtelSpan] = {}
        self._epoch_ns = time.time_ns() - time.perf_counter_ns()  # our clocks → wall clock

    def on_span_start(self, span: Span) -> None:
        api = self._trace_api
        parent = self._open.get(span.parent_id) if span.parent_id is not None else None
        context = api.set_span_in_context(parent) if parent is not None else None
        kind = api.SpanKind.CLIENT if span.kind is SpanKind.VOICE else api.SpanKind.INTERNAL
        self._open[span.span_id] = self._tracer.start_span(
            f"{span.kind} {span.name}",
            context=context,  # None: the caller's current span, if any, is the parent
            kind=kind,
            start_time=self._epoch_ns + span.start_ns,
        )

    def on_span_end(self, span: Span) -> None:
        otel = self._open.pop(span.span_id, None)
        if otel is None:
            return
        record = orjson.loads(serialise_span(span, redact_io=self.redact_io))
        otel.set_attributes(self._attributes(record))
        if span.status is SpanStatus.ERROR:
            otel.set_status(self._trace_api.Status(self._trace_api.StatusCode.ERROR, span.error))
        otel.end(end_time=self._epoch_ns + (span.end_ns or time.perf_counter_ns()))

    def on_trace_end(self, trace: Trace) -> None:
        for span in trace.spans:  # the trace ends its running spans first; this is a backstop
            leftover = self._open.pop(span.span_id, None)
            if leftover is not None:
                leftover.end()

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def force_flush(self) -> None:
        """Ask the tracer provider (the given one, else the global one) to export now."""
        provider = self._provider or self._trace_api.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            flush()

    def shutdown(self) -> None:
        """Flush; the provider itself belongs to whoever made it and stays open."""
        self.force_flush()

    def _attributes(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("kind", "run_id", "status", "error", "duration_ms"):
            self._put(out, _PREFIX + key, record.get(key))
        data = record.get("data") or {}
        for key, value in data.items():
            self._put(out, _PREFIX + key, value)
        for key, value in (record.get("attributes") or {}).items():
            self._put(out, f"{_PREFIX}attr.{key}", value)
        if record.get("kind") == str(SpanKind.VOICE):
            self._put(out, "gen_ai.response.model", data.get("model") or None)
            usage = data.get("usage") or {}
            self._put(out, "gen_ai.usage.input_tokens", usage.get("input_tokens"))
            self._put(out, "gen_ai.usage.output_tokens", usage.get("output_tokens"))
        return out

    def _put(self, out: dict[str, Any], key: str, value: Any) -> None:
        """OTel attributes are primitives or lists of one primitive type; the rest is JSON."""
        if value is None:
            return
        if isinstance(value, _Primitive):
            out[key] = value
            return
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = value
            return
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        limit = self.max_attribute_chars
        out[key] = text if len(text) <= limit else text[:limit] + "…"
