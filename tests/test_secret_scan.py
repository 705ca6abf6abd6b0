"""Secret scan: plant a secret in every place a user can put one, run the product end to end
(library and CLI, SQLite and PostgreSQL), then search every byte it showed or kept: 0 hits.

Planted: an environment variable holding a key, config options (``api_key``, a header), a base
URL's user info and query, the PostgreSQL DSN (from the environment, or in the config file),
the prompt, and what a voice echoes back (the provider below repeats the credentials it was
sent, the request path and the prompt in its answers and in its errors).

Searched: CLI stdout and stderr (``process`` as JSON and as a table, ``stats``, ``trace``),
the audit traces, every file under the state folder (SQLite database, WAL, reliabilities),
every row of the PostgreSQL schema, ``repr``/``str``/``model_dump``/``model_dump_json`` of the
config, ``repr``/``to_dict`` of the result and of the voices, and the OpenTelemetry export.

A literal secret in a prompt cannot be told from ordinary words; the prompt's secret has a
provider key's shape (``sk-proj-…``), which is what redaction can recognise.
"""

from __future__ import annotations

import getpass
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, cli

SECRETS = {
    "env": "env0key0secret0c2f1",
    "option": "option0api0key0a7d3",
    "header": "header0secret0b8e4",
    "userinfo": "userinfo0password0d9a5",
    "query": "query0secret0e1b6",
    "failing": "failing0voice0key0f2c7",
    "dsn": "dsn0password0a3d8",
    "prompt": "promptsecret0b4e9XyZ",
}
PROMPT = f"My key is sk-proj-{SECRETS['prompt']}; what is the capital of France?"


class _EchoingProvider(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that repeats everything it was sent."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        seen = (
            f"auth={self.headers.get('authorization')} x-api-key={self.headers.get('x-api-key')}"
            f" path={self.path} prompt={body['messages'][-1]['content']}"
        )
        if "/fail/" in self.path:
            self._send(500, {"error": {"message": f"upstream broke; you sent {seen}"}})
            return
        message = {"role": "assistant", "content": f"Paris ({seen})"}
        completion = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        self._send(200, {**completion, "model": "echo", "usage": {"prompt_tokens": 3}})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # the server's own log is not ours to scan
        return None


@pytest.fixture
def provider_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _config(tmp_path: Path, port: int, store: str) -> Path:
    base = f"127.0.0.1:{port}"
    text = f"""
state_dir = "{tmp_path / "state"}"
store = "{store}"

[consensus]
method = "majority"
embed = "none"

[tracing]
otel = false

[[voices]]
name = "a"
spec = "openai-compat:echo@http://scan:{SECRETS["userinfo"]}@{base}/v1?api_key={SECRETS["query"]}"
[voices.options]
api_key = "{SECRETS["option"]}"
headers = {{ "X-Api-Key" = "{SECRETS["header"]}" }}

[[voices]]
name = "b"
spec = "openai-compat:echo@http://{base}/v1"
options = {{ api_key_env = "AIO_SCAN_ENV_KEY" }}

[[voices]]
name = "c"
spec = "openai-compat:echo@http://{base}/fail/v1"
options = {{ api_key = "{SECRETS["failing"]}" }}
"""
    path = tmp_path / "app.toml"
    path.write_text(text)
    return path


def _postgres_url(schema: str) -> str:
    psycopg = pytest.importorskip("psycopg")
    from tests.store.conftest import SERVER

    try:
        psycopg.connect(SERVER, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL server unreachable at {SERVER}: {' '.join(str(exc).split())}")
    u = urlsplit(SERVER)
    user = u.username or getpass.getuser()
    netloc = f"{user}:{SECRETS['dsn']}@{u.hostname}:{u.port or 5432}"
    return f"postgresql://{netloc}{u.path}?schema={schema}"


def _postgres_rows(schema: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    from tests.store.conftest import SERVER

    with psycopg.connect(SERVER, autocommit=True) as conn:
        for table in ("runs", "voice_calls", "feedback", "reliability"):
            query = sql.SQL("SELECT row_to_json(t)::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            yield from (row[0] for row in conn.execute(query))
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _library_run(config: Path) -> tuple[list[str], str]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ai_orchestration.tracing.otel import OpenTelemetryProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with AiOrchestration(config, processors=[OpenTelemetryProcessor(provider)]) as system:
        result = system.process(PROMPT)
        system.feedback(result.run_id, "Paris")
        cfg = system.config
        shown = [
            repr(cfg), str(cfg), repr(cfg.model_dump()), cfg.model_dump_json(),
            repr(result), json.dumps(result.to_dict(), default=str), repr(system.voices),
            *(span.to_json() for span in exporter.get_finished_spans()),
        ]  # fmt: skip
    assert len(exporter.get_finished_spans()) >= 5  # run, step, three voices, consensus
    return shown, str(result.trace_path)


def _cli_run(config: Path, trace_path: str) -> list[str]:
    runner = CliRunner()
    shown = []
    for args in (
        ["process", "-c", str(config), "--json", PROMPT],
        ["process", "-c", str(config), PROMPT],
        ["stats", "-c", str(config)],
        ["stats", "-c", str(config), "--json"],
        ["trace", trace_path],
    ):
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 0, (args, result.output)
        shown += [result.stdout, result.stderr]
    return shown


@pytest.mark.parametrize("store", ["sqlite", "postgres", "postgres-in-file"])
def test_no_planted_secret_appears_anywhere(
    store: str, tmp_path: Path, provider_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DSN is read from the environment (as the docs advise), or written in the file."""
    pytest.importorskip("opentelemetry.sdk")
    schema = f"aio_scan_{uuid.uuid4().hex[:12]}"
    store_url = _postgres_url(schema) if store.startswith("postgres") else "sqlite"
    monkeypatch.setenv("AIO_SCAN_STORE", store_url)
    monkeypatch.setenv("AIO_SCAN_ENV_KEY", SECRETS["env"])
    in_file = store_url if store == "postgres-in-file" else "env:AIO_SCAN_STORE"
    config = _config(tmp_path, provider_port, in_file)

    shown, trace_path = _library_run(config)
    shown += _cli_run(config, trace_path)
    kept = b"".join(p.read_bytes() for p in sorted((tmp_path / "state").rglob("*")) if p.is_file())
    if store.startswith("postgres"):
        shown += list(_postgres_rows(schema))

    # The run did reach every voice and record what it should (a scan of nothing proves nothing).
    assert any('"voice": "a"' in s and "Paris (auth=Bearer [REDACTED] " in s for s in shown)
    assert b'"name":"c"' in kept and b"upstream broke" in kept  # the failing voice's error
    assert Path(trace_path).exists()
    everything = "\n".join(shown).encode() + kept
    hits = {where: s for where, s in SECRETS.items() if s.encode() in everything}
    assert hits == {}
