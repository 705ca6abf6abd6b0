"""Persistence of runs, their voice calls and feedback: SQLite by default, PostgreSQL for
many workers (``PostgresStore`` loads psycopg on first use)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ai_orchestration._lazy import lazy_exports
from ai_orchestration.errors import ConfigError
from ai_orchestration.store._base import Counts, RunRecord, Store, VoiceCall
from ai_orchestration.store._recording import RunRecorder
from ai_orchestration.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from ai_orchestration.store.postgres import PostgresStore

__all__ = [
    "Counts",
    "PostgresStore",
    "RunRecord",
    "RunRecorder",
    "SQLiteStore",
    "Store",
    "VoiceCall",
    "open_store",
]

__getattr__ = lazy_exports(__name__, {"PostgresStore": "ai_orchestration.store.postgres"})


def open_store(url: str, state_dir: str | Path, *, redact_io: bool = False) -> Store:
    """The store a config's ``store_url()`` names: ``"sqlite"`` is ``state.sqlite3`` under
    ``state_dir``, a ``postgresql://`` URL a :class:`PostgresStore`. With ``redact_io`` it
    keeps no inputs, answers or feedback answers (``tracing.redact_io``)."""
    if url == "sqlite":
        return SQLiteStore(Path(state_dir) / "state.sqlite3", redact_io=redact_io)
    try:
        from ai_orchestration.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if exc.name != "psycopg":
            raise
        raise ConfigError(
            "psycopg is missing; install 'ai-orchestration[postgres]'", field="store"
        ) from None
    return PostgresStore(url, redact_io=redact_io)
