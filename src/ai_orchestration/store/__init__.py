"""Persistence of runs and feedback: SQLite by default."""

from ai_orchestration.store._base import RunRecord, Store, VoiceCall
from ai_orchestration.store.sqlite import SQLiteStore

__all__ = ["RunRecord", "SQLiteStore", "Store", "VoiceCall"]
