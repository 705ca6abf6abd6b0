"""Audit benchmark: the issue's case of three voices answering 1 MB texts under
``run.timeout = 1``, ``aprocess`` run 20 times with the JSONL audit on and off.

Reports each mode's ``aprocess`` latency (median, worst), how many calls missed the 1 s
timeout, and the event loop's worst stall while the runs went on (a ticker task sleeping 5 ms
at a time; its worst overshoot), plus whether every audited run has its row in the store.
Run: ``python -m benchmarks audit``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ai_orchestration import AiOrchestration, AiOrchestrationError
from ai_orchestration.testing import FunctionVoice
from benchmarks._common import write_result

RUNS = 20
ANSWER = "lorem ipsum dolor sit amet " * 37_000  # ~1 MB


async def _ticker(stop: asyncio.Event, worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(0.005)
        worst[0] = max(worst[0], loop.time() - start - 0.005)


async def _mode(audit: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        cfg = {
            "state_dir": folder,
            "consensus": {"method": "majority", "embed": "none"},
            "run": {"timeout": 1.0},
            "tracing": {"audit": audit},
        }
        voices = [FunctionVoice(n, lambda r: ANSWER) for n in ("a", "b", "c")]
        system = AiOrchestration(cfg, voices=voices)
        await system.aprocess("warm up")  # first-run work (stats warm-up) out of the figures
        stop, worst = asyncio.Event(), [0.0]
        ticker = asyncio.create_task(_ticker(stop, worst))
        took, errors = [], 0
        for i in range(RUNS):
            started = time.perf_counter()
            try:
                await system.aprocess(f"question {i}")
            except AiOrchestrationError:
                errors += 1
            took.append(time.perf_counter() - started)
        stop.set()
        await ticker
        await asyncio.to_thread(system.close)
        missing = await asyncio.to_thread(_audited_without_row, system, Path(folder))
        await asyncio.to_thread(system.close)
    return {
        "median_s": round(statistics.median(took), 4),
        "worst_s": round(max(took), 4),
        "over_timeout": sum(t > 1.0 for t in took),
        "errors": errors,
        "loop_worst_stall_ms": round(1000 * worst[0], 1),
        "audited_runs_without_row": missing,
    }


def _audited_without_row(system: AiOrchestration, folder: Path) -> int:
    traces = sorted((folder / "traces").glob("*.jsonl"))
    return sum(system.store.get_run(p.stem) is None for p in traces)


def main() -> None:
    rows = {"audit_on": asyncio.run(_mode(True)), "audit_off": asyncio.run(_mode(False))}
    print(f"{'mode':<10} {'median s':>9} {'worst s':>8} {'>1 s':>5} {'loop stall ms':>14}")
    for mode, r in rows.items():
        print(
            f"{mode:<10} {r['median_s']:>9} {r['worst_s']:>8} {r['over_timeout']:>5} "
            f"{r['loop_worst_stall_ms']:>14}"
        )
    print(f"audited runs without a store row: {rows['audit_on']['audited_runs_without_row']}")
    write_result("audit", {"runs": RUNS, "answer_bytes": len(ANSWER), **rows})


if __name__ == "__main__":
    main()
