"""The one conformance suite, run against both stores; and proof that it catches a store
that breaks the contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration.store import SQLiteStore, VoiceCall
from ai_orchestration.testing import STORE_CHECKS, check_store
from ai_orchestration.testing.store_conformance import OpenStore

each_check = pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=STORE_CHECKS.keys())


@each_check
def test_sqlite_store(check: Callable[[OpenStore], None], tmp_path: Path) -> None:
    check(lambda: SQLiteStore(tmp_path / "state.sqlite3"))


@pytest.mark.postgres
@each_check
def test_postgres_store(check: Callable[[OpenStore], None], pg_url: str) -> None:
    from ai_orchestration.store import PostgresStore

    check(lambda: PostgresStore(pg_url))


class NewestFirst(SQLiteStore):
    def recent_calls(self, per_voice: int) -> list[VoiceCall]:
        return super().recent_calls(per_voice)[::-1]


class ForgivingFeedback(SQLiteStore):
    def record_feedback(self, run_id: str, correct_answer: Any, counts: Any = None) -> None:
        if self.get_run(run_id) is not None:
            super().record_feedback(run_id, correct_answer, counts)


@pytest.mark.parametrize(
    ("store", "failure"),
    [
        (NewestFirst, "store check 'recent_calls' failed: recent_calls(100): expected"),
        (ForgivingFeedback, "store check 'feedback' failed: feedback on an unknown run: "),
    ],
)
def test_check_store_names_the_broken_promise(
    store: type[SQLiteStore], failure: str, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError) as caught:
        check_store(lambda: store(tmp_path / "state.sqlite3"))
    assert str(caught.value).startswith(failure)


def test_check_store_passes_on_storage_already_in_use(tmp_path: Path) -> None:
    check_store(lambda: SQLiteStore(tmp_path / "state.sqlite3"))
    check_store(lambda: SQLiteStore(tmp_path / "state.sqlite3"))
