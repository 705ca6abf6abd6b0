"""SQLite store: the embedded default (one file under the state folder)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration.errors import StoreError
from ai_orchestration.store._base import RunRecord, VoiceCall

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    input       BLOB,
    answer      BLOB,
    confidence  REAL NOT NULL,
    abstained   INTEGER NOT NULL,
    votes       BLOB NOT NULL,
    usage       BLOB NOT NULL,
    trace_path  TEXT
);
CREATE TABLE IF NOT EXISTS voice_calls (
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    voice       TEXT NOT NULL,
    latency_s   REAL NOT NULL,
    ok          INTEGER NOT NULL,
    cost_usd    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS voice_calls_by_voice ON voice_calls(voice);
CREATE TABLE IF NOT EXISTS feedback (
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    created_at  REAL NOT NULL,
    answer      BLOB
);
"""


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, default=repr)


class SQLiteStore:
    """Runs and feedback in one SQLite file; safe to share between threads of a process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc

    def record_run(self, record: RunRecord) -> None:
        row = (
            record.run_id,
            record.workflow,
            record.created_at or time.time(),
            _dump(record.input),
            _dump(record.answer),
            record.confidence,
            int(record.abstained),
            _dump(record.votes),
            _dump(record.usage),
            record.trace_path,
        )
        calls = [(record.run_id, v, lat, int(ok), cost) for v, lat, ok, cost in record.calls]
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    self._db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)", row)
                    self._db.executemany("INSERT INTO voice_calls VALUES (?,?,?,?,?)", calls)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT run_id, workflow, created_at, input, answer, confidence, abstained, "
                    "votes, usage, trace_path FROM runs WHERE run_id = ?",
                    (run_id,),
                ).fetchone()
                fb = self._db.execute(
                    "SELECT answer FROM feedback WHERE run_id = ? ORDER BY created_at DESC",
                    (run_id,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc
        if row is None:
            return None
        return RunRecord(
            run_id=row[0],
            workflow=row[1],
            created_at=row[2],
            input=orjson.loads(row[3]),
            answer=orjson.loads(row[4]),
            confidence=row[5],
            abstained=bool(row[6]),
            votes=orjson.loads(row[7]),
            usage=orjson.loads(row[8]),
            trace_path=row[9],
            feedback=orjson.loads(fb[0]) if fb else None,
        )

    def recent_calls(self, per_voice: int) -> list[VoiceCall]:
        """The last ``per_voice`` calls of every voice, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT voice, latency_s, ok, cost_usd FROM (SELECT rowid AS n, *, "
                    "ROW_NUMBER() OVER (PARTITION BY voice ORDER BY rowid DESC) AS age "
                    "FROM voice_calls) WHERE age <= ? ORDER BY n",
                    (per_voice,),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc
        return [(v, lat, bool(ok), cost) for v, lat, ok, cost in rows]

    def record_feedback(self, run_id: str, correct_answer: Any) -> None:
        self._write(
            "INSERT INTO feedback VALUES (?,?,?)", (run_id, time.time(), _dump(correct_answer))
        )

    def _write(self, sql: str, row: tuple[Any, ...]) -> None:
        with self._lock:
            try:
                self._db.execute(sql, row)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
