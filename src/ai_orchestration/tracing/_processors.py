"""Built-in span processors: in-memory collection and the append-only JSONL audit log."""

from __future__ import annotations

import atexit
import queue
import threading
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration._encoding import encodable
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
     "failed", "adaptive", "answered_by", "partial")
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
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # text UTF-8 cannot hold (lone surrogates): keep it, escaped
        return orjson.dumps(encodable(value), default=_default, option=orjson.OPT_NON_STR_KEYS)


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

    def on_trace_start(self, trace: Trace) -> None:
        return None

    def force_flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


class _Writer:
    """One background thread that appends ended spans to audit files in batches: the event
    loop never blocks on disk, and a span is on disk soon after it ends, so a process that
    dies mid-run leaves every span written that ended before. Shared by every audit processor
    of the process; each one waits for and hears about only its own spans. Between spans the
    thread sleeps 0 s, handing the GIL back to the event loop (serialising a 1 MB answer holds
    it for milliseconds)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[JsonlAuditProcessor, Span]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, owner: JsonlAuditProcessor, span: Span) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="ai-orchestration-audit", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self._queue.join)
        self._queue.put((owner, span))

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[tuple[JsonlAuditProcessor, Span]]) -> None:
        """Append the batch's spans file by file, in the order they ended."""
        files: dict[tuple[JsonlAuditProcessor, str], list[Span]] = {}
        for owner, span in batch:
            files.setdefault((owner, span.run_id), []).append(span)
        for (owner, run_id), spans in files.items():
            error = None
            try:
                lines = []
                for span in spans:
                    lines.append(serialise_span(span, redact_io=owner.redact_io))
                    time.sleep(0)  # let the event loop thread run between spans
                path = owner.path_for(run_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as fh:  # append-only: never truncate an audit file
                    fh.write(b"".join(lines))
            except Exception as exc:  # keep writing other spans; the owner hears of it
                error = f"{type(exc).__name__}: {exc}"
            owner._written(run_id, len(spans), error)


_writer = _Writer()
_BATCH = 256  # spans written per wake-up at most


class JsonlAuditProcessor:
    """Appends each run's spans to ``<directory>/<run_id>.jsonl`` as they end (append-only,
    one span a line, in the order spans end; ``start_ns``/``parent_id`` give the tree).

    Writing is write-behind and batched on a background thread; ``flush()`` waits until every
    span this processor was given is on disk, and raises ``StoreError`` if one could not be
    written (a failure is reported once, to this processor only). Secrets are always
    redacted; ``redact_io`` also drops inputs/outputs.
    """

    def __init__(self, directory: str | Path, *, redact_io: bool = False) -> None:
        self.directory = Path(directory)
        self.redact_io = redact_io
        self._done = threading.Condition()
        self._pending: dict[str, int] = {}  # run id -> spans submitted, not yet written
        self._failed: dict[str, str] = {}  # run id -> why some of its spans were not written

    def path_for(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    def on_trace_start(self, trace: Trace) -> None:
        trace.path = self.path_for(trace.run_id)

    def on_span_start(self, span: Span) -> None:
        return None

    def on_span_end(self, span: Span) -> None:
        with self._done:
            self._pending[span.run_id] = self._pending.get(span.run_id, 0) + 1
        _writer.submit(self, span)

    def on_trace_end(self, trace: Trace) -> None:
        trace.path = self.path_for(trace.run_id)

    def force_flush(self) -> None:
        self.flush()

    def shutdown(self) -> None:
        self.flush()

    def _written(self, run_id: str, count: int, error: str | None) -> None:
        with self._done:
            left = self._pending.pop(run_id, count) - count
            if left > 0:
                self._pending[run_id] = left
            if error is not None:
                self._failed[run_id] = error
            self._done.notify_all()

    def flush(self, run_id: str | None = None, *, timeout: float | None = None) -> bool:
        """Wait until this processor's spans (or only ``run_id``'s) are on disk; False when
        ``timeout`` passed first. Raises ``StoreError`` for a span that failed to write."""
        with self._done:
            done = self._done.wait_for(
                lambda: not self._pending if run_id is None else run_id not in self._pending,
                timeout,
            )
            if run_id is None:
                failure = self._failed.popitem() if self._failed else None
            else:
                failure = (run_id, self._failed.pop(run_id)) if run_id in self._failed else None
        if failure is not None:
            from ai_orchestration.errors import StoreError

            raise StoreError(f"audit log write failed for run {failure[0]}: {failure[1]}")
        return done
