"""Built-in span processors: in-memory collection and the append-only JSONL audit log."""

from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration._encoding import encodable
from ai_orchestration.tracing._redact import redacted_record_json
from ai_orchestration.tracing._spans import Span
from ai_orchestration.tracing._trace import BaseSpanProcessor, Trace

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


class InMemorySpanProcessor(BaseSpanProcessor):
    """Keeps every finished trace in a list (tests, the CLI viewer)."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.ended: list[Span] = []

    def on_span_end(self, span: Span) -> None:
        self.ended.append(span)

    def on_trace_end(self, trace: Trace) -> None:
        self.traces.append(trace)


class _Flush:
    """A marker in the writer's queue: every span queued before it is written when it is
    reached."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Writer:
    """One background thread that appends ended spans to audit files in batches: the event
    loop never blocks on disk, and a span is on disk soon after it ends, so a process that
    dies mid-run leaves every span written that ended before (up to one batch window).

    Handing a span over costs the event loop a deque append: no lock, and a wake-up only
    when the thread is idle. The thread gathers what ends within ``_WINDOW`` seconds (less
    when a flush waits) and writes it together; after a span that took long to serialise
    (a big answer) it sleeps 0 s, handing the GIL back to the event loop. Shared by every
    audit processor of the process; each one waits for and hears about only its own spans."""

    def __init__(self) -> None:
        self._items: deque[tuple[JsonlAuditProcessor, Span] | _Flush] = deque()
        self._wake = threading.Event()
        self._idle = True
        self._hurry = threading.Event()  # someone waits in drain(): cut the window short
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, owner: JsonlAuditProcessor, span: Span) -> None:
        self._items.append((owner, span))
        if self._idle:
            self._start_or_wake()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False when ``timeout`` passed."""
        if self._thread is None and not self._items:
            return True
        marker = _Flush()
        self._items.append(marker)
        self._hurry.set()
        self._start_or_wake()
        return marker.done.wait(timeout)

    def _start_or_wake(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="ai-orchestration-audit", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self.drain, 10.0)
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._idle = False
            self._hurry.wait(_WINDOW)  # write-behind: let a batch gather, unless flushed
            self._hurry.clear()
            while self._items:
                self._write(self._take())
            self._idle = True
            if self._items:  # queued after the last look but before idle was set
                self._wake.set()

    def _take(self) -> list[tuple[JsonlAuditProcessor, Span] | _Flush]:
        batch: list[tuple[JsonlAuditProcessor, Span] | _Flush] = []
        while self._items and len(batch) < _BATCH:
            batch.append(self._items.popleft())
        return batch

    def _write(self, batch: list[tuple[JsonlAuditProcessor, Span] | _Flush]) -> None:
        """Append the batch's spans file by file, in the order they ended; then release the
        flushes that waited for them."""
        files: dict[tuple[JsonlAuditProcessor, str], list[Span]] = {}
        markers = []
        for item in batch:
            if isinstance(item, _Flush):
                markers.append(item)
            else:
                files.setdefault((item[0], item[1].run_id), []).append(item[1])
        for (owner, run_id), spans in files.items():
            try:
                lines = []
                for span in spans:
                    started = time.perf_counter()
                    lines.append(serialise_span(span, redact_io=owner.redact_io))
                    if time.perf_counter() - started > _LONG:  # a big span held the GIL:
                        time.sleep(0)  # let the event loop thread run before the next one
                path = owner.path_for(run_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("ab") as fh:  # append-only: never truncate an audit file
                    fh.write(b"".join(lines))
            except Exception as exc:  # keep writing other spans; the owner hears of it
                owner._failed[run_id] = f"{type(exc).__name__}: {exc}"
        for marker in markers:
            marker.done.set()


_writer = _Writer()
_BATCH = 256  # spans written per file write at most
_WINDOW = 0.005  # seconds a wake-up waits for more spans before writing
# A span that took longer to serialise hands the GIL back before the next (sleep(0) costs
# ~70 µs here: after every span it was most of the audit's cost).
_LONG = 0.001


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
        self._failed: dict[str, str] = {}  # run id -> why some of its spans were not written

    def path_for(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.jsonl"

    def on_trace_start(self, trace: Trace) -> None:
        trace.path = self.path_for(trace.run_id)

    def on_span_start(self, span: Span) -> None:
        return None

    def on_span_end(self, span: Span) -> None:
        _writer.submit(self, span)

    def on_trace_end(self, trace: Trace) -> None:
        trace.path = self.path_for(trace.run_id)

    def force_flush(self) -> None:
        self.flush()

    def shutdown(self) -> None:
        self.flush()

    def flush(self, run_id: str | None = None, *, timeout: float | None = None) -> bool:
        """Wait until the spans this processor was given (so also ``run_id``'s) are on disk;
        False when ``timeout`` passed first. Raises ``StoreError`` for a span of this
        processor (or of ``run_id``) that failed to write; the failure is reported once."""
        done = _writer.drain(timeout)
        failed = self._failed
        if run_id is None:
            failure = failed.popitem() if failed else None
        else:
            failure = (run_id, failed.pop(run_id)) if run_id in failed else None
        if failure is not None:
            from ai_orchestration.errors import StoreError

            raise StoreError(f"audit log write failed for run {failure[0]}: {failure[1]}")
        return done
