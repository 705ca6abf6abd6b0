"""A fresh PostgreSQL schema per test (dropped afterwards); a skip only when the server is
unreachable. ``AIO_TEST_POSTGRES`` overrides the server URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

SERVER = os.environ.get("AIO_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL whose ``?schema=`` is new to this test."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg import sql

    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL server unreachable at {SERVER}: {' '.join(str(exc).split())}")
    schema = f"aio_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{SERVER}?schema={schema}"
    finally:
        admin.execute("SET lock_timeout = '10s'")
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()
