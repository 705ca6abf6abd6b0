from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_orchestration._runtime import RunState, call_voice, run_scope
from ai_orchestration.errors import ProviderUnavailableError
from ai_orchestration.stats import StatsRegistry, VoiceStats, record_call, recording_stats
from ai_orchestration.testing import ScriptedVoice
from ai_orchestration.tracing import RunSpanData, SpanKind, Trace
from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse


def test_percentiles_are_nearest_rank_over_the_window() -> None:
    st = VoiceStats("v", window=100)
    for i in range(1, 101):
        st.record(i / 1000)
    assert (st.p50, st.p95, st.p99) == (0.05, 0.095, 0.099)
    for _ in range(100):  # the window rolls: old samples are forgotten
        st.record(1.0)
    assert st.p50 == 1.0 and st.calls == 200


@given(
    window=st.integers(1, 12),
    calls=st.lists(
        st.tuples(st.sampled_from([0.0, 0.1, 0.2, 0.25, 1.0, 3.5]), st.booleans()), max_size=60
    ),
    q=st.floats(0.01, 0.99),
)
def test_quantiles_and_error_rate_match_a_from_scratch_computation(
    window: int, calls: list[tuple[float, bool]], q: float
) -> None:
    vs = VoiceStats("v", window=window)
    for n, (latency, ok) in enumerate(calls, 1):
        vs.record(latency, ok)
        recent = calls[max(0, n - window) : n]
        ranked = sorted(lat for lat, _ in recent)
        expected = ranked[max(1, math.ceil(q * len(ranked))) - 1]
        assert vs.quantile(q) == expected and vs.window_calls == len(recent)
        assert vs.error_rate == sum(not good for _, good in recent) / len(recent)
    if not calls:
        assert vs.quantile(q) is None and vs.error_rate == 0.0


def test_error_rate_rolls_with_the_window() -> None:
    st = VoiceStats("v", window=4)
    for ok in (False, False, True, True):
        st.record(0.1, ok)
    assert st.error_rate == 0.5
    st.record(0.1, True)
    st.record(0.1, True)
    assert st.error_rate == 0.0 and st.errors == 2


def test_cost_and_snapshot() -> None:
    reg = StatsRegistry(window=8)
    reg.record("a", 0.2, True, 0.01)
    reg.record("a", 0.4, False, 0.0)
    snap = reg.snapshot()["a"]
    assert (snap.calls, snap.errors, snap.error_rate) == (2, 1, 0.5)
    assert snap.total_cost_usd == pytest.approx(0.01) and snap.mean_cost_usd == pytest.approx(0.005)
    assert reg.get("b") is None and reg.names() == ["a"]
    assert "a" in reg.format_table()


async def test_call_voice_records_latency_outcome_and_cost() -> None:
    voice_stats = StatsRegistry()
    trace = Trace("r", "w")
    root = trace.start_span(SpanKind.RUN, "w", RunSpanData("w"))
    paid = VoiceResponse("x", usage=Usage(cost_usd=0.002, calls=1))
    voice = ScriptedVoice("s", [paid, ProviderUnavailableError("503", voice="s")])
    with run_scope(RunState("r", trace), root), recording_stats(voice_stats):
        await call_voice(voice, VoiceRequest.from_prompt("q"))
        with pytest.raises(ProviderUnavailableError):
            await call_voice(voice, VoiceRequest.from_prompt("q"))
    st = voice_stats.get("s")
    assert st is not None
    assert (st.calls, st.errors, st.total_cost_usd) == (2, 1, 0.002)


def test_calls_outside_a_recording_scope_are_recorded_nowhere() -> None:
    mine, theirs = StatsRegistry(), StatsRegistry()
    with recording_stats(mine):
        record_call("a", 0.1)
        with recording_stats(theirs):
            record_call("a", 0.2, False)
        record_call("a", 0.3)
    record_call("a", 0.4)  # no scope: no registry
    a = mine.get("a")
    assert a is not None and (a.calls, a.errors, a.p50) == (2, 0, 0.1)
    b = theirs.get("a")
    assert b is not None and (b.calls, b.errors) == (1, 1)
