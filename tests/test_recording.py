"""Recording is part of the run: bounded by ``run.timeout``, and in step with the audit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration import AiOrchestration
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import Trace


class CancelAtTraceEnd:
    """Cancels the task that runs ``aprocess`` the moment its run has finished."""

    def on_span_start(self, span: Any) -> None:
        return None

    def on_span_end(self, span: Any) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()


def _voices() -> list[FunctionVoice]:
    return [FunctionVoice(n, lambda r: "Paris") for n in ("a", "b")]


def _root_status(path: Path) -> str:
    spans = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return next(str(s["status"]) for s in spans if s["kind"] == "run")


async def test_a_cancelled_aprocess_leaves_audit_and_store_in_agreement(tmp_path: Path) -> None:
    cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
    system = AiOrchestration(cfg, voices=_voices(), processors=[CancelAtTraceEnd()])
    for i in range(10):
        try:
            await system.aprocess(f"Capital of France, take {i}?")
        except asyncio.CancelledError:
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()  # the test's own task was not the one cancelled
    await asyncio.to_thread(system.close)
    audits = sorted((tmp_path / "traces").glob("*.jsonl"))
    assert len(audits) == 10
    for path in audits:
        assert _root_status(path) == "ok"
        record = system.store.get_run(path.stem)  # the store reopens after close()
        assert record is not None, f"run {path.stem}: audit says ok, the store has no row"
        assert record.answer == "Paris" and record.error is None
    system.close()


async def test_run_timeout_bounds_aprocess_including_recording(tmp_path: Path) -> None:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "run": {"timeout": 0.3},
    }
    system = AiOrchestration(cfg, voices=_voices())
    store = system.store
    real = store.record_run

    def slow_record(record: Any) -> None:
        time.sleep(1.0)  # a store on a slow disk or far away
        real(record)

    store.record_run = slow_record  # type: ignore[method-assign]
    started = time.perf_counter()
    result = await system.aprocess("Capital of France?")
    assert time.perf_counter() - started < 0.9  # the 0.3 s bound, not the 1 s write
    assert result.answer == "Paris"
    await asyncio.to_thread(system.feedback, result.run_id, "Paris")  # waits for the row
    record = store.get_run(result.run_id)
    assert record is not None and record.feedback == "Paris"
    await asyncio.to_thread(system.close)
