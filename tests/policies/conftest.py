from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from ai_orchestration._runtime import RunState, run_scope
from ai_orchestration.tracing import RunSpanData, Span, SpanKind, Trace


@contextmanager
def _in_run(run_id: str = "r1") -> Iterator[tuple[RunState, Span]]:
    """A bare run scope (trace + root span) so ``call_voice`` opens voice spans."""
    trace = Trace(run_id, "test")
    root = trace.start_span(SpanKind.RUN, "test", RunSpanData("test"))
    state = RunState(run_id, trace)
    with run_scope(state, root):
        yield state, root


InRun = Callable[..., AbstractContextManager[tuple[RunState, Span]]]


@pytest.fixture
def in_run() -> InRun:
    return _in_run


def _repo_root_on_path() -> None:
    """Let the chaos tests reuse ``benchmarks.bench_chaos`` (the repo root is not on sys.path
    when pytest runs from its console script)."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.append(root)


_repo_root_on_path()
