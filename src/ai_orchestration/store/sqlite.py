"""SQLite store: the embedded default (one file under the state folder)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration.errors import StoreError
from ai_orchestration.store._base import Counts, RunRecord, VoiceCall, stored_answer, to_json

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
    trace_path  TEXT,
    error       TEXT,
    duration_s  REAL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(created_at);
CREATE TABLE IF NOT EXISTS voice_calls (
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    voice       TEXT NOT NULL,
    latency_s   REAL NOT NULL,
    ok          INTEGER NOT NULL,
    cost_usd    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS voice_calls_by_voice ON voice_calls(voice);
CREATE INDEX IF NOT EXISTS voice_calls_by_run ON voice_calls(run_id);
CREATE TABLE IF NOT EXISTS feedback (
    run_id      TEXT NOT NULL REFERENCES runs(run_id),
    created_at  REAL NOT NULL,
    answer      BLOB
);
CREATE INDEX IF NOT EXISTS feedback_by_run ON feedback(run_id);
CREATE TABLE IF NOT EXISTS reliability (
    voice       TEXT PRIMARY KEY,
    correct     REAL NOT NULL,
    wrong       REAL NOT NULL
);
"""


# Distinct voices by skip-scan of the voice index: one probe per voice.
_VOICES = """
WITH RECURSIVE v(voice) AS (
    SELECT MIN(voice) FROM voice_calls
    UNION ALL
    SELECT (SELECT MIN(voice) FROM voice_calls WHERE voice > v.voice) FROM v
    WHERE v.voice IS NOT NULL
)
SELECT voice FROM v WHERE voice IS NOT NULL
"""
_ADD_COUNTS = (
    "INSERT INTO reliability VALUES (?,?,?) ON CONFLICT(voice) DO UPDATE SET "
    "correct = correct + excluded.correct, wrong = wrong + excluded.wrong"
)
_PRIMARY_KEY, _FOREIGN_KEY = "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_FOREIGNKEY"
_LAST_CALLS = (
    "SELECT rowid, voice, latency_s, ok, cost_usd FROM voice_calls WHERE voice = ? "
    "ORDER BY rowid DESC LIMIT ?"
)


_ADDED_COLUMNS = (("error", "TEXT"), ("duration_s", "REAL"))
_RUN_COLUMNS = (
    "run_id, workflow, created_at, input, answer, confidence, abstained, votes, usage, "
    "trace_path, error, duration_s"
)


def _run_record(row: Any, feedback: Any = None, calls: list[VoiceCall] | None = None) -> RunRecord:
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
        feedback=feedback,
        calls=calls or [],
        error=row[10],
        duration_s=row[11],
    )


class SQLiteStore:
    """Runs and feedback in one SQLite file; safe to share between threads of a process."""

    def __init__(self, path: str | Path, *, redact_io: bool = False) -> None:
        self.path = Path(path)
        self.redact_io = redact_io  # keep no inputs, answers or feedback answers
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            for name, kind in _ADDED_COLUMNS:  # a store from before these were kept
                if name not in columns:
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc

    def record_run(self, record: RunRecord) -> None:
        record = record.stored(redact_io=self.redact_io)
        row = record.row(to_json)
        calls = [(record.run_id, v, lat, int(ok), cost) for v, lat, ok, cost in record.calls]
        taken = f"run {record.run_id!r} is already recorded in {self.path}"
        with self._session(transaction=True, refusals={_PRIMARY_KEY: taken}) as db:
            db.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)
            db.executemany("INSERT INTO voice_calls VALUES (?,?,?,?,?)", calls)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._session() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            fb = db.execute(
                "SELECT answer FROM feedback WHERE run_id = ? ORDER BY rowid DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            calls = db.execute(
                "SELECT voice, latency_s, ok, cost_usd FROM voice_calls WHERE run_id = ? "
                "ORDER BY rowid",
                (run_id,),
            ).fetchall()
        if row is None:
            return None
        kept = [(v, lat, bool(ok), cost) for v, lat, ok, cost in calls]
        return _run_record(row, orjson.loads(fb[0]) if fb else None, kept)

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, workflow: str | None = None
    ) -> list[RunRecord]:
        where, args = ("WHERE workflow = ? ", (workflow,)) if workflow is not None else ("", ())
        query = (
            f"SELECT {_RUN_COLUMNS} FROM runs {where}"
            "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        with self._session() as db:
            rows = db.execute(query, (*args, limit, offset)).fetchall()
        return [_run_record(row) for row in rows]

    def recent_calls(self, per_voice: int) -> list[VoiceCall]:
        """The last ``per_voice`` calls of every voice, oldest first."""
        with self._session() as db:
            voices = [r[0] for r in db.execute(_VOICES)]
            rows = []
            for voice in voices:  # an index probe per voice, not a scan of every call
                rows += db.execute(_LAST_CALLS, (voice, per_voice)).fetchall()
        rows.sort()
        return [(v, lat, bool(ok), cost) for _, v, lat, ok, cost in rows]

    def record_feedback(
        self, run_id: str, correct_answer: Any, counts: Counts | None = None
    ) -> None:
        """The feedback and the voices' added (correct, wrong) counts, in one transaction."""
        kept = stored_answer(correct_answer, redact_io=self.redact_io)
        row = (run_id, time.time(), to_json(kept))
        adds = [(v, c, w) for v, (c, w) in (counts or {}).items()]
        unknown = f"no run {run_id!r} in {self.path} to give feedback on"
        with self._session(transaction=True, refusals={_FOREIGN_KEY: unknown}) as db:
            db.execute("INSERT INTO feedback VALUES (?,?,?)", row)
            db.executemany(_ADD_COUNTS, adds)

    def reliability_counts(self) -> dict[str, tuple[float, float]]:
        """(correct, wrong) feedback counts per voice, summed over every feedback."""
        with self._session() as db:
            rows = db.execute("SELECT voice, correct, wrong FROM reliability").fetchall()
        return {v: (c, w) for v, c, w in rows}

    @contextmanager
    def _session(
        self, *, transaction: bool = False, refusals: Mapping[str, str] | None = None
    ) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in one transaction when asked (rolled back on any
        error). SQLite errors become ``StoreError``; a constraint named in ``refusals`` says
        its own message."""
        with self._lock:
            try:
                if not transaction:
                    yield self._db
                    return
                self._db.execute("BEGIN")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                refused = (refusals or {}).get(getattr(exc, "sqlite_errorname", ""))
                if refused is not None:
                    raise StoreError(refused) from None
                raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
