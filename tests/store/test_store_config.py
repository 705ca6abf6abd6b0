"""Selecting the store in the config: SQLite by default, a PostgreSQL URL given directly or
through an environment variable; psycopg is imported only when that store is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ai_orchestration import AiOrchestration, ConfigError
from ai_orchestration.config import load_config
from ai_orchestration.store import SQLiteStore, open_store
from ai_orchestration.testing import FunctionVoice

URL = "postgresql://aio:Sup3r-s3cret@db.internal:5432/app"


def test_the_default_store_is_the_sqlite_file_of_the_state_folder(tmp_path: Path) -> None:
    system = AiOrchestration({"state_dir": str(tmp_path)}, voices=[FunctionVoice("a", str)])
    assert system.config.store == "sqlite"
    store = system.store
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "state.sqlite3"
    system.close()


@pytest.mark.parametrize("url", [URL, "postgres://db.internal/app?schema=aio"])
def test_a_postgresql_url_selects_postgres(url: str) -> None:
    assert load_config({"store": url}).store_url() == url


@pytest.mark.parametrize("value", ["mysql://aio:Sup3r-s3cret@db/app", "postgresql", "env:", ""])
def test_anything_else_is_a_config_error_naming_store(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"store": value})
    assert caught.value.field == "store"
    assert "postgresql://" in str(caught.value) and "Sup3r" not in str(caught.value)


def test_a_bad_store_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('state_dir = "s"\nstore = "sqlite3"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert (caught.value.file, caught.value.line, caught.value.field) == (str(config), 2, "store")


def test_the_url_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config({"store": "env:AIO_STORE_URL"})
    monkeypatch.setenv("AIO_STORE_URL", URL)
    assert config.store_url() == URL
    monkeypatch.setenv("AIO_STORE_URL", "sqlite")
    assert config.store_url() == "sqlite"


@pytest.mark.parametrize(("value", "problem"), [(None, "is not set"), (URL[2:], "does not hold")])
def test_a_missing_or_bad_variable_is_a_config_error(
    value: str | None, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("AIO_STORE_URL", raising=False)
    else:
        monkeypatch.setenv("AIO_STORE_URL", value)
    with pytest.raises(ConfigError) as caught:
        load_config({"store": "env:AIO_STORE_URL"}).store_url()
    assert caught.value.field == "store"
    assert f"$AIO_STORE_URL {problem}" in str(caught.value) and "Sup3r" not in str(caught.value)


def test_without_psycopg_opening_postgres_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "ai_orchestration.store.postgres", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"ai-orchestration\[postgres\]") as caught:
        open_store(URL, tmp_path)
    assert caught.value.field == "store"


def test_psycopg_loads_only_when_a_postgres_store_opens() -> None:
    code = (
        "import sys\n"
        "from ai_orchestration import AiOrchestration\n"
        "import ai_orchestration.store, ai_orchestration.testing\n"
        f"AiOrchestration({{'store': {URL!r}}}, voices=[])\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
