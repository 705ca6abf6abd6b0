"""Run traces exported to OpenTelemetry (the ``otel`` extra): structure, attributes, redaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from ai_orchestration import AiOrchestration, ProviderUnavailableError, WorkflowBuilder
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing.otel import OpenTelemetryProcessor
from ai_orchestration.voices import Usage, VoiceResponse


@pytest.fixture
def exported() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def voices() -> list[FunctionVoice]:
    def down(_: Any) -> str:
        raise ProviderUnavailableError("503 from upstream", voice="down")

    def counted(_: Any) -> VoiceResponse:
        return VoiceResponse(text="Paris", model="tiny-1", usage=Usage(12, 3, 0.0, 1))

    return [FunctionVoice("up", counted), FunctionVoice("down", down)]


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


async def test_a_run_becomes_one_otel_trace_with_the_same_tree(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    wf = WorkflowBuilder("ask").consensus("vote", voices()).build()
    result = await wf.run("Capital of France?", processors=[OpenTelemetryProcessor(provider)])
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"run ask", "step vote", "voice up", "voice down", "consensus vote"}
    assert len({s.context.trace_id for s in spans.values()}) == 1
    root, step = spans["run ask"], spans["step vote"]
    assert root.parent is None
    assert step.parent is not None and step.parent.span_id == root.context.span_id
    for child in ("voice up", "voice down", "consensus vote"):
        span = spans[child]
        assert span.parent is not None and span.parent.span_id == step.context.span_id
        assert step.start_time <= span.start_time <= span.end_time <= step.end_time
    up, down = spans["voice up"], spans["voice down"]
    assert up.kind is otel_trace.SpanKind.CLIENT and step.kind is otel_trace.SpanKind.INTERNAL
    assert up.attributes is not None and down.attributes is not None
    assert up.attributes["gen_ai.response.model"] == "tiny-1"
    assert up.attributes["gen_ai.usage.input_tokens"] == 12
    assert up.attributes["gen_ai.usage.output_tokens"] == 3
    assert up.attributes["ai_orchestration.output"] == "Paris"
    assert up.attributes["ai_orchestration.run_id"] == result.run_id
    assert down.status.status_code is otel_trace.StatusCode.ERROR
    assert down.status.description is not None and "503 from upstream" in down.status.description
    consensus = spans["consensus vote"].attributes
    assert consensus is not None and consensus["ai_orchestration.answer"] == "Paris"


async def test_a_run_nests_under_the_callers_current_span(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    wf = WorkflowBuilder("ask").consensus("vote", voices()).build()
    with provider.get_tracer("app").start_as_current_span("http request") as request:
        await wf.run("q", processors=[OpenTelemetryProcessor(provider)])
    root = by_name(exporter.get_finished_spans())["run ask"]
    assert root.parent is not None and root.parent.span_id == request.get_span_context().span_id


async def test_redact_io_and_secrets_never_reach_the_exporter(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported

    async def leaky(text: str) -> str:
        return f"{text} with key sk-proj-ABCDEFGHIJKLMNOPQRST"

    wf = WorkflowBuilder("w").step("leak", leaky).consensus("vote", voices()).build()
    await wf.run("private question", processors=[OpenTelemetryProcessor(provider)])
    await wf.run("private question", processors=[OpenTelemetryProcessor(provider, redact_io=True)])
    first, second = exporter.get_finished_spans()[:6], exporter.get_finished_spans()[6:]
    plain = " ".join(str(dict(s.attributes or {})) for s in first)
    assert "private question" in plain and "sk-proj-ABCDEFGHIJKLMNOPQRST" not in plain
    redacted = " ".join(str(dict(s.attributes or {})) for s in second)
    assert "private question" not in redacted and "Paris" not in redacted
    assert "sk-proj" not in redacted


def test_the_config_turns_the_export_on(tmp_path: Path) -> None:
    cfg = {"state_dir": str(tmp_path), "tracing": {"otel": True, "redact_io": True}}
    system = AiOrchestration(cfg, voices=voices())
    (processor,) = [p for p in system._processors if isinstance(p, OpenTelemetryProcessor)]
    assert processor.redact_io
    system.close()
