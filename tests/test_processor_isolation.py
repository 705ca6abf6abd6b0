"""A span processor that raises is reported on the trace and never fails the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import BaseSpanProcessor, InMemorySpanProcessor, Span, Trace


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


class Flushes(BaseSpanProcessor):
    """Counts force_flush/shutdown calls; raises from both when ``fail``."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.flushed, self.shut = fail, 0, 0

    def force_flush(self) -> None:
        self.flushed += 1
        if self.fail:
            raise RuntimeError("flush broke")

    def shutdown(self) -> None:
        self.shut += 1
        if self.fail:
            raise RuntimeError("shutdown broke")


def test_flush_and_shutdown_reach_every_processor_and_raise_the_first_failure() -> None:
    from ai_orchestration.tracing._trace import flush_processors

    broken, fine = Flushes(fail=True), Flushes()
    with pytest.raises(RuntimeError, match="flush broke"):
        flush_processors([broken, InMemorySpanProcessor(), fine, object()])
    assert (broken.flushed, fine.flushed) == (1, 1)  # the failure kept no one from flushing
    flush_processors([fine], shutdown=True)
    assert (fine.flushed, fine.shut) == (1, 1)


def test_close_shuts_the_facade_processors_down(tmp_path: Path) -> None:
    mine = Flushes()
    cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
    voices = [FunctionVoice(n, lambda r: "4") for n in ("a", "b")]
    with AiOrchestration(cfg, voices=voices, processors=[mine]) as system:
        assert system.process("2+2?").answer == "4"
        assert mine.shut == 0
    assert mine.shut == 1
