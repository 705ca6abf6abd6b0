"""One conformance suite for every :class:`~ai_orchestration.store.Store`, yours included.

``open_store`` must open a store over the same storage on every call, as another worker
would. The checks do not need that storage empty: each uses run ids and voice names of its
own and looks only at those. A broken promise raises ``AssertionError`` (``check_store``
names the check).

>>> from ai_orchestration.store import SQLiteStore
>>> from ai_orchestration.testing import check_store
>>> check_store(lambda: SQLiteStore("conformance.sqlite3"))

With pytest, ``STORE_CHECKS`` gives one test per check::

    @pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=STORE_CHECKS.keys())
    def test_my_store(check):
        check(lambda: MyStore(...))
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ai_orchestration.errors import StoreError
from ai_orchestration.store import RunRecord, Store, VoiceCall

__all__ = [
    "STORE_CHECKS",
    "OpenStore",
    "check_close",
    "check_concurrent_writers",
    "check_duplicate_run_id",
    "check_feedback",
    "check_json_values",
    "check_list_runs",
    "check_recent_calls",
    "check_reliability_counts",
    "check_round_trip",
    "check_shared_storage",
    "check_store",
]

OpenStore = Callable[[], Store]

_THREADS = 8
_RUNS_PER_THREAD = 20


def check_store(open_store: OpenStore) -> None:
    """Run every check of :data:`STORE_CHECKS` against the stores ``open_store`` opens."""
    for name, check in STORE_CHECKS.items():
        try:
            check(open_store)
        except AssertionError as exc:
            raise AssertionError(f"store check {name!r} failed: {exc}") from exc


# --- helpers -------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:300]}… ({len(text):,} characters)"


def _expect(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {_short(want)}, got {_short(got)}")


def _raises_store_error(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except StoreError:
        return
    except Exception as exc:
        raise AssertionError(f"{what}: expected StoreError, got {exc!r}") from exc
    raise AssertionError(f"{what}: expected StoreError, nothing was raised")


@contextmanager
def _opened(open_store: OpenStore) -> Iterator[Store]:
    store = open_store()
    try:
        yield store
    finally:
        store.close()


def _tag() -> str:
    return f"conformance-{uuid.uuid4().hex[:12]}"


def _run(run_id: str, calls: list[VoiceCall] | None = None, **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "workflow": "process",
        "input": {"prompt": "2 + 2 = ?", "choices": ["3", "4"]},
        "answer": "4",
        "confidence": 0.75,
        "abstained": False,
        "created_at": 1_700_000_000.25,
        **fields,
    }
    return RunRecord(run_id=run_id, calls=calls or [], **values)


def _own(calls: list[VoiceCall], tag: str) -> list[VoiceCall]:
    return [c for c in calls if c[0].startswith(tag)]


# --- the checks ----------------------------------------------------------------------------


def check_round_trip(open_store: OpenStore) -> None:
    """A recorded run reads back field for field, its calls in order; unknown ids are None."""
    tag = _tag()
    full = _run(
        f"{tag}-1",
        [(f"{tag}-a", 0.5, True, 0.001), (f"{tag}-b", 1.25, False, 0.0)],
        votes=[{"voice": f"{tag}-a", "answer": "4", "confidence": 0.9, "error": None}],
        usage={"input_tokens": 12, "output_tokens": 3, "cost_usd": 0.0125},
        trace_path="traces/run.jsonl",
    )
    abstained = _run(f"{tag}-2", answer=None, confidence=0.3, abstained=True)
    failed = _run(
        f"{tag}-4",
        [(f"{tag}-a", 2.0, False, 0.0)],
        answer=None,
        confidence=0.0,
        error=f"quorum not met: 0 valid vote(s) of 1, 1 required:\n  {tag}-a: down",
    )
    with _opened(open_store) as store:
        before = time.time()
        store.record_run(full)
        store.record_run(abstained)
        store.record_run(failed)
        _expect(store.get_run(failed.run_id), failed, "get_run of a failed run")
        store.record_run(_run(f"{tag}-3", created_at=0.0))
        after = time.time()
        _expect(store.get_run(full.run_id), full, "get_run of a recorded run")
        _expect(store.get_run(abstained.run_id), abstained, "get_run of an abstained run")
        stamped = store.get_run(f"{tag}-3")
        created = stamped.created_at if stamped is not None else None
        if created is None or not before - 1 <= created <= after + 1:
            raise AssertionError(f"created_at 0 is stored as the time of recording, got {created}")
        _expect(store.get_run(f"{tag}-missing"), None, "get_run of an unknown run id")


def check_feedback(open_store: OpenStore) -> None:
    """The latest feedback is the run's; feedback on an unknown run is a StoreError."""
    tag = _tag()
    record = _run(f"{tag}-1", [(f"{tag}-a", 0.5, True, 0.0)])
    with _opened(open_store) as store:
        store.record_run(record)
        store.record_feedback(record.run_id, "5")
        store.record_feedback(record.run_id, {"answer": "4", "by": "reviewer"})
        latest = {"answer": "4", "by": "reviewer"}
        _expect(store.get_run(record.run_id), replace(record, feedback=latest), "latest feedback")
        _raises_store_error(
            lambda: store.record_feedback(f"{tag}-missing", "4"), "feedback on an unknown run"
        )


def check_duplicate_run_id(open_store: OpenStore) -> None:
    """Recording a run id twice is a StoreError and writes none of the second run's calls."""
    tag = _tag()
    first = _run(f"{tag}-1", [(f"{tag}-a", 0.5, True, 0.0)])
    with _opened(open_store) as store:
        store.record_run(first)
        again = _run(first.run_id, [(f"{tag}-a", 9.0, False, 1.0)], answer="other")
        _raises_store_error(lambda: store.record_run(again), "recording a run id twice")
        _expect(store.get_run(first.run_id), first, "the first run after a duplicate")
        _expect(_own(store.recent_calls(10), tag), first.calls, "calls after a duplicate")


def check_recent_calls(open_store: OpenStore) -> None:
    """The last N calls of every voice, oldest first, across runs; N <= 0 gives none."""
    tag = _tag()
    a, b = f"{tag}-a", f"{tag}-b"
    runs = [
        [(a, 0.1, True, 0.0), (b, 0.2, False, 0.0), (a, 0.3, True, 0.01)],
        [(b, 0.4, True, 0.0), (a, 0.5, False, 0.0)],
        [(a, 0.6, True, 0.02)],
    ]
    with _opened(open_store) as store:
        for i, calls in enumerate(runs):
            store.record_run(_run(f"{tag}-{i}", calls))
        everything = [c for calls in runs for c in calls]
        _expect(_own(store.recent_calls(100), tag), everything, "recent_calls(100)")
        two = [(b, 0.2, False, 0.0), (b, 0.4, True, 0.0), (a, 0.5, False, 0.0)]
        _expect(_own(store.recent_calls(2), tag), [*two, (a, 0.6, True, 0.02)], "recent_calls(2)")
        one = [(b, 0.4, True, 0.0), (a, 0.6, True, 0.02)]
        _expect(_own(store.recent_calls(1), tag), one, "recent_calls(1)")
        _expect(_own(store.recent_calls(0), tag), [], "recent_calls(0)")
        types = {tuple(type(x) for x in c) for c in _own(store.recent_calls(100), tag)}
        _expect(types, {(str, float, bool, float)}, "recent_calls value types")


def _odd_values() -> dict[str, Any]:
    text = "naïve café — 東京 — עברית — 😀👍🏽 — e\u0301 — \u2028 — nul:\x00 — \\u0000 — \"'"
    deep: Any = "bottom"
    for i in range(64):
        deep = {f"level {i}": [deep]}
    return {
        "text": text,
        f"key {text}": [text],
        "numbers": [0, -1, 2**53 + 1, -(2**63), 2**64 - 1, 0.1, 1e-300, 1.7976931348623157e308],
        "constants": [True, False, None, [], {}],
        "deep": deep,
        "large text": "ab€" * 350_000,
        "many": [{"i": i, "s": str(i)} for i in range(20_000)],
    }


def check_json_values(open_store: OpenStore) -> None:
    """Unicode (NUL included), big and deep JSON values round-trip in every value field."""
    tag = _tag()
    odd = _odd_values()
    record = _run(f"{tag}-1", input=odd, answer=odd["text"], votes=[odd], usage=odd)
    with _opened(open_store) as store:
        store.record_run(record)
        store.record_feedback(record.run_id, odd)
        _expect(store.get_run(record.run_id), replace(record, feedback=odd), "odd JSON values")


def check_shared_storage(open_store: OpenStore) -> None:
    """Two stores over one storage (two workers) see each other's runs, calls and feedback."""
    tag = _tag()
    record = _run(f"{tag}-1", [(f"{tag}-a", 0.5, True, 0.0)])
    with _opened(open_store) as first, _opened(open_store) as second:
        first.record_run(record)
        _expect(second.get_run(record.run_id), record, "a run recorded by another store")
        _expect(_own(second.recent_calls(5), tag), record.calls, "calls recorded by another store")
        second.record_feedback(record.run_id, "4")
        got = first.get_run(record.run_id)
        _expect(got.feedback if got else None, "4", "feedback recorded by another store")


def check_reliability_counts(open_store: OpenStore) -> None:
    """Feedback adds its (correct, wrong) counts in the same transaction: every worker's
    additions count, concurrent ones too; feedback on an unknown run adds nothing."""
    tag = _tag()
    voice, other = f"{tag}-a", f"{tag}-b"
    runs = [_run(f"{tag}-{i}") for i in range(_THREADS)]
    with _opened(open_store) as first, _opened(open_store) as second:
        for run in runs:
            first.record_run(run)
        first.record_feedback(runs[0].run_id, "4", {voice: (1.0, 0.0), other: (0.0, 1.0)})
        second.record_feedback(runs[1].run_id, "4", {voice: (1.0, 0.0)})
        _raises_store_error(
            lambda: second.record_feedback(f"{tag}-missing", "4", {voice: (9.0, 9.0)}),
            "feedback with counts on an unknown run",
        )
        start = threading.Barrier(_THREADS - 2)
        failures: list[BaseException] = []

        def add(run_id: str, store: Store) -> None:
            try:
                start.wait()
                store.record_feedback(run_id, "4", {voice: (0.0, 1.0)})
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [
            threading.Thread(target=add, args=(run.run_id, (first, second)[i % 2]))
            for i, run in enumerate(runs[2:])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise AssertionError(f"a feedback thread failed: {failures[0]!r}") from failures[0]
        counts = second.reliability_counts()
        _expect(counts.get(voice), (2.0, float(_THREADS - 2)), "counts added by every worker")
        _expect(counts.get(other), (0.0, 1.0), "counts of a voice with one feedback")


def check_concurrent_writers(open_store: OpenStore) -> None:
    """Threads writing and reading at once, half on one shared store and half on stores of
    their own, lose nothing; each voice's calls keep their order."""
    tag = _tag()
    shared = open_store()
    start = threading.Barrier(_THREADS)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        store = shared if i % 2 == 0 else open_store()
        voice = f"{tag}-t{i}"
        try:
            start.wait()
            for j in range(_RUNS_PER_THREAD):
                run = _run(f"{tag}-{i}-{j}", _calls(voice, j), answer=f"answer {i} {j}")
                store.record_run(run)
                store.get_run(f"{tag}-{i}-{j // 2}")
                store.recent_calls(3)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            if store is not shared:
                store.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if failures:
            raise AssertionError(f"a writer thread failed: {failures[0]!r}") from failures[0]
        calls = _own(shared.recent_calls(2 * _RUNS_PER_THREAD), tag)
        for i in range(_THREADS):
            mine = [c for c in calls if c[0] == f"{tag}-t{i}"]
            want = [c for j in range(_RUNS_PER_THREAD) for c in _calls(f"{tag}-t{i}", j)]
            _expect(mine, want, f"calls of writer thread {i}")
            last = shared.get_run(f"{tag}-{i}-{_RUNS_PER_THREAD - 1}")
            _expect(last and last.answer, f"answer {i} {_RUNS_PER_THREAD - 1}", "a written run")
    finally:
        shared.close()


def _calls(voice: str, j: int) -> list[VoiceCall]:
    return [(voice, float(j), True, 0.0), (voice, j + 0.5, False, 0.001)]


def check_close(open_store: OpenStore) -> None:
    """A closed store refuses calls with StoreError; closing twice is fine."""
    store = open_store()
    store.close()
    store.close()
    _raises_store_error(lambda: store.get_run("any"), "get_run on a closed store")
    _raises_store_error(lambda: store.record_run(_run(f"{_tag()}-1")), "record_run when closed")


def check_list_runs(open_store: OpenStore) -> None:
    """``list_runs`` pages a workflow's runs newest first; each keeps status and duration."""
    tag = _tag()
    runs = [
        _run(f"{tag}-old", workflow=tag, created_at=1_700_000_010.0, duration_s=2.5),
        _run(f"{tag}-mid", workflow=tag, created_at=1_700_000_020.0, duration_s=0.25,
             answer=None, abstained=True),
        _run(f"{tag}-new", workflow=tag, created_at=1_700_000_030.0, duration_s=1.0,
             answer=None, error="quorum not met"),
        _run(f"{tag}-other", workflow=f"{tag}-x", created_at=1_700_000_040.0),
    ]  # fmt: skip
    with _opened(open_store) as store:
        for run in runs:
            store.record_run(run)
        page = [r.summary() for r in store.list_runs(workflow=tag, limit=2)]
        rest = [r.run_id for r in store.list_runs(workflow=tag, limit=2, offset=2)]
    _expect(
        page,
        [
            {"run_id": f"{tag}-new", "workflow": tag, "status": "error",
             "started": 1_700_000_029.0, "duration_s": 1.0},
            {"run_id": f"{tag}-mid", "workflow": tag, "status": "abstained",
             "started": 1_700_000_019.75, "duration_s": 0.25},
        ],
        "list_runs first page",
    )  # fmt: skip
    _expect(rest, [f"{tag}-old"], "list_runs second page")


STORE_CHECKS: dict[str, Callable[[OpenStore], None]] = {
    "round_trip": check_round_trip,
    "feedback": check_feedback,
    "duplicate_run_id": check_duplicate_run_id,
    "recent_calls": check_recent_calls,
    "json_values": check_json_values,
    "shared_storage": check_shared_storage,
    "reliability_counts": check_reliability_counts,
    "concurrent_writers": check_concurrent_writers,
    "list_runs": check_list_runs,
    "close": check_close,
}
