"""A run killed mid-way (kill -9) leaves on disk every span that ended before the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from ai_orchestration import WorkflowBuilder
from ai_orchestration.tracing import JsonlAuditProcessor

folder = Path(sys.argv[1])

async def quick(x):
    return x.upper()

async def hang(x):
    (folder / "hanging").write_text("1")
    await asyncio.sleep(60)

flow = WorkflowBuilder("crashy").step("quick", quick).step("hang", hang).build()
asyncio.run(flow.run("hi", processors=[JsonlAuditProcessor(folder)], run_id="doomed"))
"""


def _wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def test_spans_that_ended_survive_kill_9(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env)
    audit = tmp_path / "doomed.jsonl"
    try:
        assert _wait_for(lambda: (tmp_path / "hanging").exists(), 30), "the run never started"
        # write-behind: give the writer thread a moment, then kill the process mid-run
        _wait_for(lambda: any(b'"quick"' in line for line in _lines(audit)), 5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    records = [orjson.loads(line) for line in _lines(audit)]  # every line whole JSON
    assert [(r["kind"], r["name"], r["status"], r["data"]["output"]) for r in records] == [
        ("step", "quick", "ok", "HI")
    ]  # the hanging step and the run never ended: nothing of them is claimed
