"""Run traces: completeness (also for failed runs), the JSONL audit log, redaction, no-op tracing,
and a pinned span-tree snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration.agents import Agent, Team
from ai_orchestration.context import ToolCall
from ai_orchestration.errors import StepError
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import (
    InMemorySpanProcessor,
    JsonlAuditProcessor,
    NoopTrace,
    Span,
    SpanKind,
    SpanStatus,
    Trace,
)
from ai_orchestration.voices import VoiceResponse
from ai_orchestration.workflow import All, Workflow, WorkflowBuilder

Node = tuple[str, str, str, list[Any]]


def span_tree(trace: Trace) -> list[Node]:
    """The trace as nested (kind, name, status, children) in start order: no ids, no timings."""
    children: dict[int | None, list[Span]] = {}
    for s in trace.spans:
        children.setdefault(s.parent_id, []).append(s)

    def node(s: Span) -> Node:
        return (str(s.kind), s.name, str(s.status), [node(c) for c in children.get(s.span_id, [])])

    return [node(s) for s in children.get(None, [])]


def assert_is_a_closed_tree(trace: Trace) -> None:
    ids = [s.span_id for s in trace.spans]
    assert len(set(ids)) == len(ids)
    roots = [s for s in trace.spans if s.parent_id is None]
    assert [r.kind for r in roots] == [SpanKind.RUN]
    assert all(s.parent_id in ids for s in trace.spans if s.parent_id is not None)
    assert all(s.run_id == trace.run_id for s in trace.spans)
    assert all(
        s.status is not SpanStatus.RUNNING and s.end_ns >= s.start_ns > 0 for s in trace.spans
    )


async def prep(x: str) -> str:
    return f"Q: {x}"


def handoff_voice() -> FunctionVoice:
    call = (ToolCall("1", "transfer_to_expert"),)
    return FunctionVoice("vt", lambda r: VoiceResponse("", tool_calls=call))


def snapshot_workflow() -> Workflow:
    """Every kind of span: run, step, voice, consensus, handoff, a skipped and a nested step."""
    team = Team(
        [
            Agent("triage", handoff_voice(), handoffs=("expert",)),
            Agent("expert", FunctionVoice("ve", lambda r: "42")),
        ],
        start="triage",
    )
    voters = [FunctionVoice("a", lambda r: "yes"), FunctionVoice("b", lambda r: "yes")]
    inner = WorkflowBuilder("inner").consensus("vote", voters).build()
    return (
        WorkflowBuilder("snap")
        .step("prep", prep)
        .route("r", lambda x: "deep")
        .step("deep", inner, when="deep")
        .step("shallow", prep, when="shallow", after="r")
        .add(team.as_step("team", after=["prep"]))
        .build()
    )


SNAPSHOT: list[Node] = [
    (
        "run",
        "snap",
        "ok",
        [
            ("step", "prep", "ok", []),
            ("step", "r", "ok", []),
            ("step", "shallow", "skipped", []),
            (
                "step",
                "deep",
                "ok",
                [
                    (
                        "step",
                        "vote",
                        "ok",
                        [
                            ("voice", "a", "ok", []),
                            ("voice", "b", "ok", []),
                            ("consensus", "vote", "ok", []),
                        ],
                    )
                ],
            ),
            (
                "step",
                "team",
                "ok",
                [
                    ("voice", "vt", "ok", []),
                    ("handoff", "triage->expert", "ok", []),
                    ("voice", "ve", "ok", []),
                ],
            ),
        ],
    )
]


async def test_span_tree_snapshot() -> None:
    mem = InMemorySpanProcessor()
    result = await snapshot_workflow().run("hi", processors=[mem])
    (trace,) = mem.traces
    assert trace is result.trace
    assert span_tree(trace) == SNAPSHOT
    assert_is_a_closed_tree(trace)
    # processors saw every span end exactly once
    assert sorted(s.span_id for s in mem.ended) == sorted(s.span_id for s in trace.spans)
    assert len(mem.ended) == len(trace.spans) == 13


async def test_spans_carry_inputs_outputs_and_usage() -> None:
    result = await snapshot_workflow().run("hi")
    trace = result.trace
    root = trace.root
    assert root is not None
    assert (root.data.input, root.data.usage["calls"]) == ("hi", 4)  # type: ignore[attr-defined]
    (prep_span,) = trace.find(SpanKind.STEP, "prep")
    assert (prep_span.data.input, prep_span.data.output) == ("hi", "Q: hi")  # type: ignore[attr-defined]
    (vote,) = trace.find(SpanKind.CONSENSUS)
    data: Any = vote.data
    assert (data.method, data.answer) == ("majority", "yes")
    assert [v.voice for v in data.votes] == ["a", "b"]
    (voice_a,) = trace.find(SpanKind.VOICE, "a")
    assert (voice_a.data.prompt, voice_a.data.output) == ("Q: hi", "yes")  # type: ignore[attr-defined]
    assert voice_a.data.usage.calls == 1  # type: ignore[attr-defined]


# --- failed runs ---------------------------------------------------------------------------------


async def test_a_failed_runs_trace_is_complete() -> None:
    entered: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

    def blocker(i: int) -> Any:
        async def fn(_: Any) -> None:
            entered[i].set()
            await asyncio.Event().wait()

        return fn

    async def bad(_: Any) -> None:
        for e in entered:
            await e.wait()
        raise ValueError("broken input")

    wf = (
        WorkflowBuilder("failing")
        .step("src", prep)
        .step("slow1", blocker(0), after="src")
        .step("slow2", blocker(1), after="src")
        .step("bad", bad, after="src")
        .step("join", prep, after=["slow1", "slow2", "bad"], join=All())
        .build()
    )
    mem = InMemorySpanProcessor()
    try:
        await wf.run("x", processors=[mem], run_id="failed-run")
    except StepError as exc:
        err = exc
    else:
        raise AssertionError("the run should fail")
    (trace,) = mem.traces
    assert_is_a_closed_tree(trace)
    assert span_tree(trace) == [
        (
            "run",
            "failing",
            "error",
            [
                ("step", "src", "ok", []),
                ("step", "slow1", "cancelled", []),
                ("step", "slow2", "cancelled", []),
                ("step", "bad", "error", []),
                ("step", "join", "error", []),
            ],
        )
    ]
    why = "StepError: step 'bad' failed: ValueError: broken input"
    spans = {s.name: s for s in trace.spans}
    assert spans["failing"].error == why
    assert spans["bad"].error == why
    assert spans["join"].error == why
    assert str(err) == "step 'bad' failed: ValueError: broken input"
    assert err.run_id == "failed-run"  # type: ignore[attr-defined]


# --- JSONL audit ---------------------------------------------------------------------------------


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """An audit file's records in start order (the file holds them in the order spans end)."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return sorted((orjson.loads(line) for line in raw.splitlines()), key=lambda r: r["start_ns"])


async def test_audit_file_per_run_one_json_object_per_span(tmp_path: Path) -> None:
    audit = JsonlAuditProcessor(tmp_path / "audit")
    wf = snapshot_workflow()
    r1 = await wf.run("hi", processors=[audit], run_id="run-a")
    r2 = await wf.run("hi", processors=[audit], run_id="run-b")
    audit.flush()
    assert listing(tmp_path / "audit") == ["run-a.jsonl", "run-b.jsonl"]
    assert r1.trace.path == tmp_path / "audit" / "run-a.jsonl"
    for result in (r1, r2):
        records = read_jsonl(tmp_path / "audit" / f"{result.run_id}.jsonl")
        assert [r["span_id"] for r in records] == [s.span_id for s in result.trace.spans]
        assert {r["run_id"] for r in records} == {result.run_id}
        assert [(r["kind"], r["name"], r["status"]) for r in records] == [
            (str(s.kind), s.name, str(s.status)) for s in result.trace.spans
        ]
    first = read_jsonl(tmp_path / "audit" / "run-a.jsonl")
    assert first[0]["data"]["input"] == "hi"
    assert first[0]["data"]["usage"]["calls"] == 4


async def test_audit_file_is_append_only(tmp_path: Path) -> None:
    audit = JsonlAuditProcessor(tmp_path)
    wf = WorkflowBuilder("w").step("a", prep).build()
    await wf.run("1", processors=[audit], run_id="same")
    audit.flush()
    before = (tmp_path / "same.jsonl").read_bytes()
    await wf.run("2", processors=[audit], run_id="same")
    audit.flush()
    after = (tmp_path / "same.jsonl").read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    records = read_jsonl(tmp_path / "same.jsonl")
    assert [(r["name"], r["data"]["input"]) for r in records] == [
        ("w", "1"),
        ("a", "1"),
        ("w", "2"),
        ("a", "2"),
    ]


async def test_audit_file_redacts_secrets(tmp_path: Path) -> None:
    audit = JsonlAuditProcessor(tmp_path)

    async def call_api(request: dict[str, Any]) -> dict[str, Any]:
        return {"status": 200, "echo": request["prompt"]}

    wf = WorkflowBuilder("w").step("api", call_api).build()
    request = {
        "prompt": "use key sk-proj-ABCDEFGHIJKLMNOP please",
        "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz", "Accept": "json"},
        "api_key": "plainsecretvalue",
    }
    result = await wf.run(request, processors=[audit], run_id="secret-run")
    audit.flush()
    raw = (tmp_path / "secret-run.jsonl").read_text()
    for secret in ("ABCDEFGHIJKLMNOP", "abcdefghijklmnopqrstuvwxyz", "plainsecretvalue"):
        assert secret not in raw
    step = next(r for r in read_jsonl(tmp_path / "secret-run.jsonl") if r["name"] == "api")
    assert step["data"]["input"] == {
        "prompt": "use key [REDACTED] please",
        "headers": {"Authorization": "[REDACTED]", "Accept": "json"},
        "api_key": "[REDACTED]",
    }
    assert step["data"]["output"] == {"status": 200, "echo": "use key [REDACTED] please"}
    # redaction happens on the way out only: the run itself saw the real values
    assert result.output["echo"] == "use key sk-proj-ABCDEFGHIJKLMNOP please"


async def test_audit_redact_io_drops_inputs_and_outputs(tmp_path: Path) -> None:
    audit = JsonlAuditProcessor(tmp_path, redact_io=True)
    wf = WorkflowBuilder("w").step("a", prep).build()
    await wf.run("private text", processors=[audit], run_id="io")
    audit.flush()
    assert "private text" not in (tmp_path / "io.jsonl").read_text()
    records = read_jsonl(tmp_path / "io.jsonl")
    assert [(r["data"]["input"], r["data"]["output"]) for r in records] == [
        ("[REDACTED]", "[REDACTED]"),
        ("[REDACTED]", "[REDACTED]"),
    ]


async def test_audit_redact_io_drops_answers_from_consensus_spans(tmp_path: Path) -> None:
    from ai_orchestration.testing import FunctionVoice

    audit = JsonlAuditProcessor(tmp_path, redact_io=True)
    voices = [
        FunctionVoice("a", lambda r: "Private Answer"),
        FunctionVoice("b", lambda r: "Other Private Answer"),
        FunctionVoice("c", lambda r: "Private Answer"),
    ]
    wf = WorkflowBuilder("w").consensus("vote", voices, method="weighted").build()
    result = await wf.run("a private question", processors=[audit], run_id="cio")
    audit.flush()
    text = (tmp_path / "cio.jsonl").read_text()
    assert "Private" not in text and "private question" not in text
    (span,) = [r for r in read_jsonl(tmp_path / "cio.jsonl") if r["kind"] == "consensus"]
    data = span["data"]
    assert data["answer"] == "[REDACTED]"
    assert [v["voice"] for v in data["votes"]] == ["a", "b", "c"]
    explanation = data["explanation"]  # who weighed what survives; what they said does not
    assert explanation["weights"] == dict(result.output.weights)
    assert abs(explanation["agreement"] - 2 / 3) < 1e-9
    assert "distribution" not in explanation and "voices" not in explanation


async def test_audit_of_a_failed_run_records_why(tmp_path: Path) -> None:
    audit = JsonlAuditProcessor(tmp_path)

    async def boom(_: Any) -> None:
        raise ValueError("nope")

    wf = WorkflowBuilder("w").step("a", prep).step("b", boom).build()
    with contextlib.suppress(StepError):
        await wf.run("x", processors=[audit], run_id="bad")
    audit.flush()
    records = read_jsonl(tmp_path / "bad.jsonl")
    assert [(r["name"], r["status"], r["error"]) for r in records] == [
        ("w", "error", "StepError: step 'b' failed: ValueError: nope"),
        ("a", "ok", None),
        ("b", "error", "StepError: step 'b' failed: ValueError: nope"),
    ]


# --- tracing off ---------------------------------------------------------------------------------


async def test_tracing_off_gives_a_noop_trace_and_the_same_results(tmp_path: Path) -> None:
    mem = InMemorySpanProcessor()
    audit = JsonlAuditProcessor(tmp_path)
    wf = snapshot_workflow()
    traced = await wf.run("hi")
    result = await wf.run("hi", tracing=False, processors=[mem, audit])
    audit.flush()
    assert isinstance(result.trace, NoopTrace) and not result.trace.enabled
    assert result.trace.spans == [] and result.trace.root is None
    assert (mem.ended, mem.traces, listing(tmp_path)) == ([], [], [])
    assert result.output["deep"].answer == traced.output["deep"].answer == "yes"
    assert result.output["team"].answer == traced.output["team"].answer == "42"
    assert result.usage.calls == traced.usage.calls == 4


async def test_tracing_off_for_map_loop_and_failures() -> None:
    async def inc(x: int) -> int:
        return x + 1

    wf = (
        WorkflowBuilder("w")
        .map("m", inc)
        .step("sum", _sum)
        .loop("l", inc, until=lambda x: x >= 10, max_iterations=20)
        .build()
    )
    assert (await wf.run([1, 2, 3], tracing=False)).output == 10
    bad = WorkflowBuilder("w").map("m", inc).build()
    try:
        await bad.run(["x"], tracing=False)
    except StepError as exc:
        assert exc.step == "m"
    else:
        raise AssertionError("should fail")


async def _sum(xs: list[int]) -> int:
    return sum(xs)


# --- redaction fast path -------------------------------------------------------------------------

TRICKY = [
    "plain text",
    "sk-proj-ABCDEFGHIJKLMNOP",
    "Bearer\tabcdefghijkl",  # JSON escapes the tab: the fast check must not rely on it
    "see https://x.test/?api_key=abcdefgh1234",
    "AIza" + "b" * 24,
    "ﬁ unicode ſk-ABCDEFGHIJ",
    "\u212aey=abcdefghijk",  # Kelvin sign: Unicode case folding makes it "key="
]


def _full_path(record: dict[str, Any]) -> bytes:
    from ai_orchestration.tracing._processors import _default
    from ai_orchestration.tracing._redact import redact_secrets

    raw = orjson.dumps(record, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return orjson.dumps(redact_secrets(orjson.loads(raw))) + b"\n"


def test_serialise_span_fast_path_matches_full_redaction() -> None:
    from ai_orchestration.tracing import StepSpanData, serialise_span

    for text in TRICKY:
        for value in (text, {"Authorization": text}, {"API_KEY": 1}, {"headers": [text]}):
            span = Span("run", SpanKind.STEP, "s", StepSpanData("call", value, text), 1)
            assert serialise_span(span) == _full_path(span.to_dict()), (text, value)


def test_every_secret_key_is_caught_by_the_fast_check() -> None:
    from ai_orchestration.tracing._redact import SECRET_KEYS, may_hold_secrets

    for key in SECRET_KEYS:
        assert may_hold_secrets(orjson.dumps({key.upper(): "v"}))
    assert not may_hold_secrets(b'{"name":"step","status":"ok","output":42}')


def test_span_ids_are_unique_across_processes_and_restarts() -> None:
    code = (
        "from ai_orchestration.tracing._spans import Span, SpanKind, SpanData\n"
        "print(' '.join(str(Span('r', SpanKind.STEP, 's', SpanData(), None).span_id)"
        " for _ in range(200)))\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    first, second = ({int(x) for x in r.stdout.split()} for r in runs)
    # A per-process counter restarts at 1: both processes would hand out the same 200 ids.
    assert len(first) == len(second) == 200 and not first & second
    assert all(0 < i < 2**63 for i in first | second)
