"""A span processor that raises is reported on the trace and never fails the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import InMemorySpanProcessor, Span, Trace


class Exploding:
    """Raises from every hook, with a key-shaped string in the message."""

    def __init__(self) -> None:
        self.calls = 0

    def on_trace_start(self, trace: Trace) -> None:
        self.calls += 1
        raise RuntimeError("start failed")

    def on_span_start(self, span: Span) -> None:
        self.calls += 1

    def on_span_end(self, span: Span) -> None:
        self.calls += 1
        raise RuntimeError("exporter down, key sk-ant-0123456789abcdefghij")

    def on_trace_end(self, trace: Trace) -> None:
        raise ValueError("flush failed")


def test_a_raising_processor_does_not_fail_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad, mem = Exploding(), InMemorySpanProcessor()
    cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
    voices = [FunctionVoice("a", lambda r: "4"), FunctionVoice("b", lambda r: "4")]
    with caplog.at_level(logging.WARNING, logger="ai_orchestration.tracing"):
        system = AiOrchestration(cfg, voices=voices, processors=[bad, mem])
        result = system.process("2 + 2?")
        again = system.process("2 + 2 again?")
        system.close()
    assert (result.answer, again.answer) == ("4", "4")
    trace = result.trace
    spans = len(trace.spans)
    # one on_trace_start, every on_span_end, one on_trace_end: all counted on the trace
    assert trace.processor_error_count == 1 + spans + 1
    assert trace.processor_errors[0] == "Exploding.on_trace_start: RuntimeError: start failed"
    assert trace.processor_errors[-1] == "Exploding.on_trace_end: ValueError: flush failed"
    assert "sk-ant-0123456789abcdefghij" not in " ".join(trace.processor_errors)
    # the processor after the failing one still saw every span of both runs
    assert len(mem.ended) == spans + len(again.trace.spans)
    # logged once per processor hook, not once per span or per run
    logged = [r.getMessage() for r in caplog.records if "span processor failed" in r.getMessage()]
    assert 1 <= len(logged) <= 3 and not any("sk-ant-0123" in m for m in logged)
