"""PostgresStore beyond the conformance suite: passwords never in errors, its own schema,
workers starting together, a dropped connection, and two orchestrators sharing one store."""

from __future__ import annotations

import pickle
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, ProviderUnavailableError, cli
from ai_orchestration.errors import StoreError
from ai_orchestration.store import RunRecord
from ai_orchestration.testing import FunctionVoice

psycopg = pytest.importorskip("psycopg")
from ai_orchestration.store.postgres import PostgresStore  # noqa: E402  (needs psycopg)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://aio:Sup3r-s3cret@127.0.0.1:1/test",  # nothing listens on port 1
        "postgresql://aio@127.0.0.1:1/test?password=Sup3r-s3cret",
        "postgresql://aio:Sup3r%zzs3cret@127.0.0.1/test",  # libpq quotes the bad token
        "host=127.0.0.1 port=1 password=Sup3r s3cret",  # libpq quotes the stray word
    ],
)
def test_connection_errors_never_show_the_password(dsn: str) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore(dsn)
    err = caught.value
    told = [str(err), repr(err), "".join(traceback.format_exception(err)), repr(pickle.dumps(err))]
    for text in told:
        assert "Sup3r" not in text and "s3cret" not in text
    assert "cannot connect to PostgreSQL store" in str(err) and "***" in str(err)
    assert err.__cause__ is None and err.__context__ is None


def test_a_refused_connection_says_where_and_why() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://aio:Sup3r-s3cret@127.0.0.1:1/test?schema=aio")
    assert str(caught.value).startswith(
        "cannot connect to PostgreSQL store postgresql://aio:***@127.0.0.1:1/test?schema=aio: "
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )


def test_the_schema_must_be_an_identifier() -> None:
    with pytest.raises(StoreError, match="schema must be an identifier"):
        PostgresStore("postgresql://127.0.0.1:1/test?schema=a;drop")


@pytest.mark.postgres
def test_the_tables_live_in_the_schema_of_the_url(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    schema = pg_url.rpartition("schema=")[2]
    assert store.schema == schema and repr(store) == f"PostgresStore({pg_url!r})"
    with psycopg.connect(pg_url.partition("?")[0]) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
        kinds = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND data_type = 'jsonb' ORDER BY 1",
            (schema,),
        ).fetchall()
    assert rows == [("feedback",), ("reliability",), ("runs",), ("voice_calls",)]
    assert [k for (k,) in kinds] == ["answer", "answer", "input", "usage", "votes"]
    store.close()


@pytest.mark.postgres
def test_workers_creating_the_schema_at_once_all_succeed(pg_url: str) -> None:
    start = threading.Barrier(8)
    stores: list[PostgresStore] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(pg_url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(stores) == 8
    for store in stores:
        store.close()


@pytest.mark.postgres
def test_a_dropped_connection_is_replaced_on_the_next_call(pg_url: str) -> None:
    app = f"aio-test-{pg_url.rpartition('=')[2]}"
    store = PostgresStore(f"{pg_url}&application_name={app}")
    store.record_run(RunRecord("r1", "w", "q", "a", 1.0, False))
    with psycopg.connect(pg_url.partition("?")[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s", (app,))  # fmt: skip
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone() != (0,):
            time.sleep(0.01)
    with pytest.raises(StoreError, match="PostgreSQL store postgresql://"):
        store.get_run("r1")
    record = store.get_run("r1")
    assert record is not None and record.answer == "a"
    store.close()


def system(state_dir: Path, store: str) -> AiOrchestration:
    def down(_: Any) -> str:
        raise ProviderUnavailableError("503", voice="b")

    config = {
        "state_dir": str(state_dir),
        "store": store,
        "consensus": {"method": "majority", "embed": "none"},
    }
    voices = [FunctionVoice("a", lambda r: "4", delay=0.01), FunctionVoice("b", down)]
    return AiOrchestration(config, voices=voices)


@pytest.mark.postgres
def test_two_workers_share_one_postgres_store(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = system(tmp_path / "w1", pg_url)
    run_ids = [first.process("2 + 2 = ?").run_id for _ in range(3)]
    monkeypatch.setenv("AIO_TEST_STORE_URL", pg_url)
    second = system(tmp_path / "w2", "env:AIO_TEST_STORE_URL")
    assert isinstance(second.store, PostgresStore)
    record = second.store.get_run(run_ids[0])
    assert record is not None and record.answer == "4" and record.input == "2 + 2 = ?"
    assert sorted(v for v, *_ in record.calls) == ["a", "b"]
    second.feedback(run_ids[0], "4")
    seen_by_first = first.store.get_run(run_ids[0])
    assert seen_by_first is not None and seen_by_first.feedback == "4"
    calls = second.store.recent_calls(second.registries.stats.window)
    assert sorted((v, ok) for v, _, ok, _ in calls) == [("a", True)] * 3 + [("b", False)] * 3
    second.process("2 + 2 = ?")  # starts from the first worker's recorded calls
    a, b = second.registries.stats.get("a"), second.registries.stats.get("b")
    assert a is not None and b is not None
    assert (a.calls, b.calls, b.errors) == (4, 4, 4)
    first.close()
    second.close()


@pytest.mark.postgres
def test_cli_stats_reads_the_postgres_store(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = system(tmp_path, pg_url)
    worker.process("q")
    worker.process("q")
    worker.close()
    monkeypatch.setenv("AIO_TEST_STORE_URL", f"{pg_url}&password=Sup3r")  # trust auth: unused
    config = tmp_path / "c.toml"
    config.write_text(f'state_dir = "{tmp_path}"\nstore = "env:AIO_TEST_STORE_URL"\n')
    result = CliRunner().invoke(cli.app, ["stats", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["voices"]["a"]["calls"] == 2 and data["voices"]["b"]["error_rate"] == 1.0
    assert data["source"] == f"{pg_url}&password=***"


@pytest.mark.postgres
def test_feedback_given_to_one_worker_reweighs_the_voices_of_another(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_orchestration import orchestrator

    monkeypatch.setattr(orchestrator, "_RELIABILITY_REFRESH_S", 0.0)

    def worker(state_dir: Path) -> AiOrchestration:
        config = {
            "state_dir": str(state_dir),
            "store": pg_url,
            "consensus": {"method": "weighted", "embed": "none"},
        }
        voices = [FunctionVoice(n, lambda r, n=n: "5" if n == "b" else "4") for n in "abc"]
        return AiOrchestration(config, voices=voices)

    first, second = worker(tmp_path / "w1"), worker(tmp_path / "w2")
    before = first.process("2 + 3 = ?")
    assert before.answer == "4" and before.consensus.weights["a"] == before.consensus.weights["b"]
    for _ in range(4):  # the second worker learns that b is right and a, c are wrong
        second.feedback(first.process("2 + 3 = ?").run_id, "5")
    assert not (tmp_path / "w2" / "reliability.json").exists()  # the store holds the counts
    assert second.store.reliability_counts() == {"a": (0.0, 4.0), "b": (4.0, 0.0), "c": (0.0, 4.0)}
    after = first.process("2 + 3 = ?")  # the first worker re-reads the shared counts
    assert after.consensus.weights["b"] > 0 > after.consensus.weights["a"]
    assert after.answer == "5"
    first.close()
    second.close()
