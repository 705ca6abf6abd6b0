"""The facade's jobs beyond answering: chat-shaped input, async feedback, closing its HTTP
pool, routing reloads off the loop, and recording runs that never went through it."""

from __future__ import annotations

import asyncio
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration import AiOrchestration, InputError, Workflow, WorkflowBuilder
from ai_orchestration.store import RunRecorder, SQLiteStore
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceRequest
from ai_orchestration.voices.openai_compat import OpenAICompatVoice

COMPLETION = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


def _config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "consensus": {"method": "majority", "embed": "none"},
        **extra,
    }


def _echo_voices(seen: list[VoiceRequest]) -> list[FunctionVoice]:
    def answer(request: VoiceRequest) -> str:
        seen.append(request)
        return "4"

    return [FunctionVoice(n, answer) for n in ("a", "b")]


# --- chat-shaped input ---------------------------------------------------------------------


def test_messages_input_answers_like_a_prompt(tmp_path: Path) -> None:
    seen: list[VoiceRequest] = []
    chat = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "2+2?"}]}  # fmt: skip
    with AiOrchestration(_config(tmp_path), voices=_echo_voices(seen)) as system:
        result = system.process(chat)
        by_prompt = system.process("2+2?")
        record = system.store.get_run(result.run_id)
    assert (result.answer, result.confidence) == ("4", by_prompt.confidence)
    assert [v.answer for v in result.votes] == ["4", "4"]
    assert [(m.role, m.content) for m in seen[0].messages] == [
        ("system", "Be brief."),
        ("user", "2+2?"),
    ]
    assert record is not None and record.input == chat  # the store keeps the chat as given


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"messages": []}, "input 'messages' must be a non-empty list"),
        ({"messages": "hi"}, "input 'messages' must be a non-empty list"),
        ({"messages": [{"role": "user", "content": "a"}, "b"]}, "input['messages'][1] is str"),
        ({"messages": [{"role": "robot", "content": "a"}]}, "input['messages'][0].role is 'robot'"),
        ({"messages": [{"role": "user", "content": 4}]}, "input['messages'][0].content is int"),
        ({"messages": [{"role": "system", "content": "a"}]}, "has no 'user' message"),
        ({"messages": [{"role": "user", "content": "  "}]}, "input prompt is empty"),
    ],
)
def test_bad_messages_name_the_offending_element(tmp_path: Path, bad: Any, fragment: str) -> None:
    system = AiOrchestration(_config(tmp_path), voices=_echo_voices([]))
    with system, pytest.raises(InputError) as info:
        system.process(bad)
    assert fragment in str(info.value)


# --- async feedback ------------------------------------------------------------------------


async def test_afeedback_updates_reliability_and_store(tmp_path: Path) -> None:
    voices = [FunctionVoice("good", lambda r: "right"), FunctionVoice("bad", lambda r: "wrong")]
    system = AiOrchestration(_config(tmp_path), voices=voices)
    run_ids = [(await system.aprocess(f"q{i}")).run_id for i in range(2)]
    for run_id in run_ids:
        await system.afeedback(run_id, "right")
    assert system.store.reliability_counts() == {"good": (2.0, 0.0), "bad": (0.0, 2.0)}
    with pytest.raises(InputError, match="unknown run id 'nope'"):
        await system.afeedback("nope", "x")
    await system.aclose()


# --- closing the HTTP pool -----------------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAlive)
        self.open = 0
        self.lock = threading.Lock()

    def wait_open(self, count: int) -> int:
        deadline = time.monotonic() + 5
        while self.open != count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open


class _KeepAlive(socketserver.StreamRequestHandler):
    """Answers every chat completion on one kept-alive connection until the client closes."""

    server: _Server

    def handle(self) -> None:
        with self.server.lock:
            self.server.open += 1
        try:
            while (line := self.rfile.readline()) and line.strip():
                length = 0
                while (header := self.rfile.readline()).strip():
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                self.rfile.read(length)
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(COMPLETION)}\r\n\r\n".encode()
                    + COMPLETION
                )
        finally:
            with self.server.lock:
                self.server.open -= 1


@pytest.fixture
def http_server() -> Iterator[tuple[_Server, str]]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _http_voices(url: str) -> list[OpenAICompatVoice]:
    return [OpenAICompatVoice("m", base_url=url, name=n) for n in ("a", "b")]


def test_close_closes_the_pooled_connections(
    tmp_path: Path, http_server: tuple[_Server, str]
) -> None:
    server, url = http_server
    system = AiOrchestration(_config(tmp_path), voices=_http_voices(url))
    assert system.process("2+2?").answer == "4"
    assert server.wait_open(1) >= 1  # kept alive in the pool after the run
    system.close()
    assert server.wait_open(0) == 0


async def test_aclose_closes_the_pooled_connections(
    tmp_path: Path, http_server: tuple[_Server, str]
) -> None:
    server, url = http_server
    async with AiOrchestration(_config(tmp_path), voices=_http_voices(url)) as system:
        assert (await system.aprocess("2+2?")).answer == "4"
        assert await asyncio.to_thread(server.wait_open, 1) >= 1
    assert await asyncio.to_thread(server.wait_open, 0) == 0


# --- routing reload ------------------------------------------------------------------------


async def test_the_routing_file_is_reread_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_orchestration import routing

    config = tmp_path / "app.toml"
    body = (
        f'state_dir = "{tmp_path / "state"}"\n'
        '[consensus]\nmethod = "majority"\nembed = "none"\nmin_votes = 1\n'
        '[routing]\ndefault = ["a", "b"]\npanel = {panel}\n'
    )
    config.write_text(body.replace("{panel}", "2"))
    system = AiOrchestration(config, voices=_echo_voices([]))
    router = system.router
    assert router is not None
    router.check_interval = 0.0
    loop_thread = threading.get_ident()
    read_on: list[int] = []
    real = routing._load_file

    def spy(*args: Any) -> Any:
        read_on.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(routing, "_load_file", spy)
    config.write_text(body.replace("{panel}", "1"))
    result = await system.aprocess("2+2?")
    assert read_on and loop_thread not in read_on  # re-read, on a worker thread
    assert result.route is not None and len(result.route.panel) == 1
    await system.aclose()


# --- recording runs started without the facade ---------------------------------------------


def _flow() -> Workflow:
    voices = [FunctionVoice(n, lambda r: "4") for n in ("a", "b")]
    return WorkflowBuilder("vote").consensus("c", voices, method="majority").build()


async def test_workflow_run_is_recorded_with_its_calls_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    recorder = RunRecorder(lambda: store)
    run = await _flow().run("2+2?", processors=[recorder])
    recorder.raise_failures()
    record = store.get_run(run.run_id)
    assert record is not None
    assert (record.workflow, record.input, record.answer, record.confidence) == (
        "vote", "2+2?", "4", run.output.confidence
    )  # fmt: skip
    assert sorted((voice, ok) for voice, _, ok, _ in record.calls) == [("a", True), ("b", True)]
    assert record.status == "ok" and record.duration_s == pytest.approx(run.duration_s, abs=0.05)
    recorder.close()
    store.close()


async def test_a_failed_workflow_run_is_recorded_with_its_error(tmp_path: Path) -> None:
    async def boom(x: str) -> str:
        raise ValueError("no luck")

    store = SQLiteStore(tmp_path / "s.sqlite3")
    recorder = RunRecorder(lambda: store)
    flow = WorkflowBuilder("fails").step("b", boom).build()
    with pytest.raises(Exception, match="no luck") as info:
        await flow.run("x", processors=[recorder])
    recorder.raise_failures()
    (record,) = store.list_runs()
    assert record.run_id == info.value.run_id  # type: ignore[attr-defined]
    assert (record.status, record.answer, record.error) == ("error", None, str(info.value))
    recorder.close()
    store.close()
