"""A store file from before failed runs were kept gains ``runs.error`` when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ai_orchestration.store import RunRecord, SQLiteStore

_OLD_RUNS = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, created_at REAL NOT NULL, input BLOB,
    answer BLOB, confidence REAL NOT NULL, abstained INTEGER NOT NULL, votes BLOB NOT NULL,
    usage BLOB NOT NULL, trace_path TEXT
);
INSERT INTO runs VALUES ('old', 'process', 1.0, '"q"', '"4"', 0.9, 0, '[]', '{}', NULL);
"""


def test_an_old_sqlite_store_gains_the_error_column(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_RUNS)
    store = SQLiteStore(path)
    try:
        old = store.get_run("old")
        assert old is not None and old.answer == "4" and old.error is None
        failed = RunRecord(
            run_id="new",
            workflow="process",
            input="q",
            answer=None,
            confidence=0.0,
            abstained=False,
            created_at=2.0,
            calls=[("a", 1.5, False, 0.0)],
            error="quorum not met: 0 valid vote(s) of 1, 1 required:\n  a: down",
        )
        store.record_run(failed)
        assert store.get_run("new") == failed
    finally:
        store.close()
