"""PostgreSQL store: one database shared by many workers (the ``postgres`` extra, psycopg 3).

>>> from ai_orchestration.store.postgres import PostgresStore
>>> store = PostgresStore("postgresql://aio@db.internal/app?schema=aio")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import errors, sql
from psycopg.types.json import set_json_loads

from ai_orchestration.errors import StoreError
from ai_orchestration.store._base import Counts, RunRecord, VoiceCall, stored_answer, to_json
from ai_orchestration.store._dsn import passwords, redact, scrub, split_schema

__all__ = ["DEFAULT_SCHEMA", "PostgresStore"]

DEFAULT_SCHEMA = "ai_orchestration"
_TABLES = ("runs", "voice_calls", "feedback", "reliability")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# JSONB cannot hold U+0000, so a value with one is kept as its JSON text under this one key.
_NUL_KEY = "$ai_orchestration.json"

_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.runs (
    run_id      text PRIMARY KEY,
    workflow    text NOT NULL,
    created_at  double precision NOT NULL,
    input       jsonb,
    answer      jsonb,
    confidence  double precision NOT NULL,
    abstained   boolean NOT NULL,
    votes       jsonb NOT NULL,
    usage       jsonb NOT NULL,
    trace_path  text,
    error       text,
    duration_s  double precision
);
CREATE INDEX IF NOT EXISTS runs_by_time ON {s}.runs (created_at);
CREATE TABLE IF NOT EXISTS {s}.voice_calls (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    run_id      text NOT NULL REFERENCES {s}.runs (run_id),
    voice       text NOT NULL,
    latency_s   double precision NOT NULL,
    ok          boolean NOT NULL,
    cost_usd    double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS voice_calls_by_voice ON {s}.voice_calls (voice, id);
CREATE INDEX IF NOT EXISTS voice_calls_by_run ON {s}.voice_calls (run_id, id);
CREATE TABLE IF NOT EXISTS {s}.feedback (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      text NOT NULL REFERENCES {s}.runs (run_id),
    created_at  double precision NOT NULL,
    answer      jsonb
);
CREATE INDEX IF NOT EXISTS feedback_by_run ON {s}.feedback (run_id, id);
CREATE TABLE IF NOT EXISTS {s}.reliability (
    voice       text PRIMARY KEY,
    correct     double precision NOT NULL,
    wrong       double precision NOT NULL
);
"""

_QUERIES = {
    "insert_run": "INSERT INTO {s}.runs (run_id, workflow, created_at, input, answer, "
    "confidence, abstained, votes, usage, trace_path, error, duration_s) VALUES "
    "(%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)",
    "list_runs": "SELECT run_id, workflow, created_at, input, answer, confidence, abstained, "
    "votes, usage, trace_path, error, NULL, duration_s FROM {s}.runs "
    "WHERE (%s::text IS NULL OR workflow = %s::text) "
    "ORDER BY created_at DESC, run_id DESC LIMIT %s OFFSET %s",
    "insert_call": "INSERT INTO {s}.voice_calls (run_id, voice, latency_s, ok, cost_usd) "
    "VALUES (%s, %s, %s, %s, %s)",
    "insert_feedback": "INSERT INTO {s}.feedback (run_id, created_at, answer) "
    "VALUES (%s, %s, %s::jsonb)",
    "add_counts": "INSERT INTO {s}.reliability AS r VALUES (%s, %s, %s) ON CONFLICT (voice) "
    "DO UPDATE SET correct = r.correct + EXCLUDED.correct, wrong = r.wrong + EXCLUDED.wrong",
    "counts": "SELECT voice, correct, wrong FROM {s}.reliability",
    "get_run": "SELECT run_id, workflow, created_at, input, answer, confidence, abstained, "
    "votes, usage, trace_path, error, (SELECT f.answer FROM {s}.feedback f "
    "WHERE f.run_id = r.run_id ORDER BY f.id DESC LIMIT 1), duration_s FROM {s}.runs r "
    "WHERE run_id = %s",
    "get_calls": "SELECT voice, latency_s, ok, cost_usd FROM {s}.voice_calls "
    "WHERE run_id = %s ORDER BY id",
    # A loose index scan over (voice, id): one index probe per distinct voice, then its last
    # N calls, instead of ranking every call ever recorded (voice_calls has no index on id
    # alone, which the planner would scan backwards instead).
    "recent_calls": """
        WITH RECURSIVE voices (voice) AS (
            (SELECT voice FROM {s}.voice_calls ORDER BY voice LIMIT 1)
            UNION ALL
            SELECT (SELECT c.voice FROM {s}.voice_calls c WHERE c.voice > v.voice
                    ORDER BY c.voice LIMIT 1)
            FROM voices v WHERE v.voice IS NOT NULL
        )
        SELECT c.voice, c.latency_s, c.ok, c.cost_usd FROM voices v
        CROSS JOIN LATERAL (SELECT * FROM {s}.voice_calls c WHERE c.voice = v.voice
                            ORDER BY c.id DESC LIMIT %s) c
        WHERE v.voice IS NOT NULL ORDER BY c.id""",
}


def _jsonb(value: Any) -> str:
    text = to_json(value)
    if b"\\u0000" in text:
        text = orjson.dumps({_NUL_KEY: text.decode()})
    return text.decode()


def _value(stored: Any) -> Any:
    if isinstance(stored, dict) and len(stored) == 1 and _NUL_KEY in stored:
        return orjson.loads(stored[_NUL_KEY])
    return stored


def _run_record(row: Any, calls: list[VoiceCall] | None = None) -> RunRecord:
    """A run from a ``get_run``/``list_runs`` row (feedback at 11, duration at 12)."""
    return RunRecord(
        run_id=row[0],
        workflow=row[1],
        created_at=row[2],
        input=_value(row[3]),
        answer=_value(row[4]),
        confidence=row[5],
        abstained=row[6],
        votes=_value(row[7]),
        usage=_value(row[8]),
        trace_path=row[9],
        feedback=_value(row[11]),
        calls=calls or [],
        error=row[10],
        duration_s=row[12],
    )


class PostgresStore:
    """Runs, voice calls and feedback in three tables of one PostgreSQL schema, created if
    missing: ``ai_orchestration``, or the URL's ``?schema=NAME`` (taken out before connecting).
    Values are JSONB. Error messages show the DSN with its password as ``***``.

    One connection behind a lock serves every thread of the process. The orchestrator calls
    the store once or twice per run, from worker threads, and each call is one short
    transaction; a pool would multiply connections per worker process (the server's
    ``max_connections`` is shared by all workers) without throughput that matters here.
    A connection that broke (server restart, idle timeout) is replaced on the next call.
    """

    def __init__(self, dsn: str, *, redact_io: bool = False) -> None:
        self.redact_io = redact_io  # keep no inputs, answers or feedback answers
        self._dsn, schema = split_schema(dsn)
        self.url = redact(dsn)
        self.schema = schema or DEFAULT_SCHEMA
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise StoreError(f"PostgreSQL store {self.url}: schema must be an identifier")
        s = sql.Identifier(self.schema)
        self._ddl = sql.SQL(_DDL).format(s=s)
        self._q = {k: sql.SQL(q).format(s=s) for k, q in _QUERIES.items()}
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._connect()
        try:
            with self._session() as conn:
                self._create_schema(conn)
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.ProgrammingError) and passwords(self._dsn):
                reason = "the connection string is malformed"  # libpq may quote parts of it
            else:
                reason = self._reason(exc)
        else:
            set_json_loads(orjson.loads, conn)
            return conn
        # Raised outside the handler: no __context__ that could carry the DSN.
        raise StoreError(f"cannot connect to PostgreSQL store {self.url}: {reason}")

    def _reason(self, exc: BaseException) -> str:
        return scrub(" ".join(str(exc).split()), self._dsn) or type(exc).__name__

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise StoreError(f"PostgreSQL store {self.url} is closed")
            if self._conn.closed:
                self._conn = self._connect()
            try:
                yield self._conn
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store {self.url}: {self._reason(exc)}") from exc

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        # DDL needs CREATE privileges; skip it when the tables are there. Workers starting
        # together take turns on an advisory lock: concurrent CREATE IF NOT EXISTS can fail.
        present = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (self.schema, list(_TABLES)),
        ).fetchone()
        if present is not None and present[0] == len(_TABLES):
            self._add_columns(conn)
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"aio:{self.schema}",))
            conn.execute(self._ddl)

    def _add_columns(self, conn: psycopg.Connection[Any]) -> None:
        """A store from before failed runs (``runs.error``) and durations were kept gets
        those columns."""
        for name, kind in (("error", "text"), ("duration_s", "double precision")):
            found = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'runs' AND column_name = %s",
                (self.schema, name),
            ).fetchone()
            if found is not None:
                continue
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"aio:{self.schema}",))
                alter = sql.SQL("ALTER TABLE {}.runs ADD COLUMN IF NOT EXISTS {} {}")
                conn.execute(
                    alter.format(sql.Identifier(self.schema), sql.Identifier(name), sql.SQL(kind))
                )

    def record_run(self, record: RunRecord) -> None:
        record = record.stored(redact_io=self.redact_io)
        row = record.row(_jsonb)
        calls = [(record.run_id, v, lat, ok, cost) for v, lat, ok, cost in record.calls]
        with self._session() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(self._q["insert_run"], row)
                    cur.executemany(self._q["insert_call"], calls)
            except errors.UniqueViolation:
                raise StoreError(
                    f"run {record.run_id!r} is already recorded in {self.url}"
                ) from None

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._session() as conn:
            row = conn.execute(self._q["get_run"], (run_id,)).fetchone()
            calls = conn.execute(self._q["get_calls"], (run_id,)).fetchall() if row else []
        if row is None:
            return None
        return _run_record(row, [(v, lat, ok, cost) for v, lat, ok, cost in calls])

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, workflow: str | None = None
    ) -> list[RunRecord]:
        with self._session() as conn:
            rows = conn.execute(
                self._q["list_runs"], (workflow, workflow, limit, offset)
            ).fetchall()
        return [_run_record(row) for row in rows]

    def record_feedback(
        self, run_id: str, correct_answer: Any, counts: Counts | None = None
    ) -> None:
        """The feedback and the voices' added (correct, wrong) counts, in one transaction;
        concurrent workers' additions all count (an upsert adds to the stored row)."""
        row = (run_id, time.time(), _jsonb(stored_answer(correct_answer, redact_io=self.redact_io)))
        adds = [(v, c, w) for v, (c, w) in sorted((counts or {}).items())]  # one lock order
        with self._session() as conn:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(self._q["insert_feedback"], row)
                    cur.executemany(self._q["add_counts"], adds)
            except errors.ForeignKeyViolation:
                raise StoreError(f"no run {run_id!r} in {self.url} to give feedback on") from None

    def reliability_counts(self) -> dict[str, tuple[float, float]]:
        """(correct, wrong) feedback counts per voice, summed over every worker's feedback."""
        with self._session() as conn:
            rows = conn.execute(self._q["counts"]).fetchall()
        return {v: (float(c), float(w)) for v, c, w in rows}

    def recent_calls(self, per_voice: int) -> list[VoiceCall]:
        """The last ``per_voice`` calls of every voice, oldest first."""
        if per_voice <= 0:
            return []
        with self._session() as conn:
            rows = conn.execute(self._q["recent_calls"], (per_voice,)).fetchall()
        return [(v, lat, ok, cost) for v, lat, ok, cost in rows]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
