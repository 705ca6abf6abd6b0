"""Voice statistics survive the process: runs record their calls, the next process and the
CLI start from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, ProviderUnavailableError, cli
from ai_orchestration.errors import StoreError
from ai_orchestration.store import RunRecord, SQLiteStore
from ai_orchestration.testing import FunctionVoice


def record(run_id: str, calls: list[tuple[str, float, bool, float]]) -> RunRecord:
    return RunRecord(run_id, "w", "q", "a", 1.0, False, calls=calls)


def test_recent_calls_keeps_the_last_n_per_voice_oldest_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.record_run(record("r1", [("a", 0.1, True, 0.0), ("b", 0.5, False, 0.0)]))
    store.record_run(record("r2", [("a", 0.2, True, 0.01), ("a", 0.3, True, 0.0)]))
    assert store.recent_calls(2) == [
        ("b", 0.5, False, 0.0), ("a", 0.2, True, 0.01), ("a", 0.3, True, 0.0),
    ]  # fmt: skip
    store.close()


def test_a_failed_run_insert_writes_none_of_its_calls(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.record_run(record("r1", [("a", 0.1, True, 0.0)]))
    with pytest.raises(StoreError):
        store.record_run(record("r1", [("a", 9.9, True, 0.0)]))  # same run id
    assert store.recent_calls(10) == [("a", 0.1, True, 0.0)]
    store.close()


def system(tmp_path: Path) -> AiOrchestration:
    def flaky(_: Any) -> str:
        raise ProviderUnavailableError("503", voice="b")

    cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
    voices = [FunctionVoice("a", lambda r: "x", delay=0.02), FunctionVoice("b", flaky)]
    return AiOrchestration(cfg, voices=voices)


def test_the_next_process_starts_from_the_recorded_statistics(tmp_path: Path) -> None:
    first = system(tmp_path)
    for _ in range(3):
        first.process("q")
    first.close()
    second = system(tmp_path)  # a new process (or instance): its statistics start empty
    assert second.registries.stats.get("a") is None
    second.process("q")
    a, b = second.registries.stats.get("a"), second.registries.stats.get("b")
    assert a is not None and b is not None
    assert (a.calls, b.calls, b.errors) == (4, 4, 4)  # 3 recorded + this run's
    assert a.p50 is not None and a.p50 >= 0.02
    second.close()


def test_cli_stats_shows_the_recorded_calls(tmp_path: Path) -> None:
    s = system(tmp_path)
    s.process("q")
    s.process("q")
    s.close()
    config = tmp_path / "c.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(cli.app, ["stats", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["voices"]["a"]["calls"] == 2 and data["voices"]["b"]["error_rate"] == 1.0
    assert data["voices"]["a"]["p50"] >= 0.02
    table = CliRunner().invoke(cli.app, ["stats", "-c", str(config)])
    assert table.exit_code == 0 and "state.sqlite3" in table.stdout
    assert any(line.split()[:2] == ["a", "2"] for line in table.stdout.splitlines())
