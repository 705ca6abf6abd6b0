"""Built-in span processors: in-memory collection and the append-only JSONL audit log."""

from __future__ import annotations

import atexit
import queue
import threading
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration.tracing._redact import redacted_record_json
from ai_orchestration.tracing._spans import Span
from ai_orchestration.tracing._trace import Trace

__all__ = ["InMemorySpanProcessor", "JsonlAuditProcessor", "serialise_span"]

_MAX_REPR = 2000


def _default(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    text = repr(obj)
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "…"


_CONTENT = ("input", "output", "prompt", "delta", "answer")
# What a consensus explanation may keep under ``redact_io``: who weighed what, not what was said.
_EXPLANATION_KEPT = frozenset(
    ("weights", "agreement", "abstained", "method", "priors", "temperature", "not_awaited",
     "failed", "adaptive", "answered_by")
)  # fmt: skip


def _vote_without_answer(vote: Any) -> dict[str, Any]:
    fields = vote if isinstance(vote, dict) else {"voice": vote.voice, "error": vote.error}
    out = {"voice": fields.get("voice")}
    if fields.get("error") is not None:
        out["error"] = fields["error"]
    return out


def _redact_io(data: dict[str, Any]) -> None:
    for key in _CONTENT:
        if data.get(key) is not None:
            data[key] = "[REDACTED]"
    if data.get("votes"):
        data["votes"] = [_vote_without_answer(v) for v in data["votes"]]
    explanation = data.get("explanation")
    if isinstance(explanation, dict):
        data["explanation"] = {k: v for k, v in explanation.items() if k in _EXPLANATION_KEPT}


def serialise_span(span: Span, *, redact_io: bool = False) -> bytes:
    """One JSON line for ``span``, secrets redacted; with ``redact_io`` inputs, outputs and the
    voices' answers are dropped (timings, usage, weights and errors stay)."""
    record = span.to_dict()
    if redact_io:
        _redact_io(record["data"])
    # Content fields only are scanned and redacted; ids, times and usage counts are not.
    return redacted_record_json(record, _dumps) + b"\n"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


class InMemorySpanProcessor:
    """Keeps every finished trace in a list (tests, the CLI viewer)."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.ended: list[Span] = []

    def on_span_start(self, span: Span) -> None:
        return None

    def on_span_end(self, span: Span) -> None:
        self.ended.append(span)

    def on_trace_end(self, trace: Trace) -> None:
        self.traces.append(trace)


class _Writer:
    """One background thread that writes audit files: the event loop never blocks on disk."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Path, Trace, bool] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def submit(self, path: Path, trace: Trace, redact_io: bool) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="ai-orchestration-audit", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self.flush)
        self._queue.put((path, trace, redact_io))

    def flush(self) -> None:
        if self._thread is not None:
            self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is not None:
                    path, trace, redact_io = item
                    lines = b"".join(serialise_span(s, redact_io=redact_io) for s in trace.spans)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("ab") as fh:  # append-only: never truncate an audit file
                        fh.write(lines)
            except Exception as exc:  # keep writing later traces; surface the failure
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()


_writer = _Writer()


class JsonlAuditProcessor:
    """Writes each run's spans to ``<directory>/<run_id>.jsonl`` (append-only, one span a line).

    Writing is write-behind on a background thread; ``flush()`` waits until every finished
    trace is on disk. Secrets are always redacted; ``redact_io`` also drops inputs/outputs.
    """

    def __init__(self, directory: str | Path, *, redact_io: bool = False) -> None:
        self.directory = Path(directory)
        self.redact_io = redact_io

    def path_for(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    def on_span_start(self, span: Span) -> None:
        return None

    def on_span_end(self, span: Span) -> None:
        return None

    def on_trace_end(self, trace: Trace) -> None:
        trace.path = self.path_for(trace.run_id)
        _writer.submit(trace.path, trace, self.redact_io)

    def flush(self) -> None:
        _writer.flush()
        if _writer.errors:
            from ai_orchestration.errors import StoreError

            raise StoreError("audit log write failed: " + _writer.errors.pop())
