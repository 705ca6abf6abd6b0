"""Chaos benchmark: a 5-voice consensus workflow whose voices fail 30 % of calls, hang on 5 %
and answer garbage on 5 %, run 1,000 times behind the reliability policies.

Reports whether every run ended with a result or a typed error within its deadline, orphan
tasks, whether every injected fault left a trace, accuracy against the questions' true answers
in a fault-free phase and in the chaos phase, and the policies' overhead per voice call with no
faults (vs the bare voice, same process; both called directly, so the engine's ``call_voice``
seam and its stats recording are in neither figure).
Run: ``python -m benchmarks chaos``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ai_orchestration._runtime import RunState, run_scope
from ai_orchestration.errors import (
    AiOrchestrationError,
    AuthenticationError,
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ai_orchestration.policies import (
    CircuitPolicy,
    CircuitSettings,
    DeadlinePolicy,
    HedgePolicy,
    PolicyRegistries,
    RateLimitPolicy,
    RateLimits,
    RetryPolicy,
    TimeoutPolicy,
    ValidationPolicy,
    with_policies,
)
from ai_orchestration.stats import recording_stats
from ai_orchestration.testing import Faults, FaultyVoice, SeededVoice
from ai_orchestration.tracing import RunSpanData, SpanKind, SpanStatus, Trace
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse
from ai_orchestration.workflow import WorkflowBuilder

CHOICES = ("A", "B", "C", "D")
EVIDENCE = ("retries", "validation_reasks", "hedge", "fallback_errors", "circuit_refused")


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    runs: int = 1000
    concurrency: int = 50
    seed: int = 0
    voices: int = 5
    accuracy: float = 0.75
    fail_rate: float = 0.30
    hang_rate: float = 0.05
    garbage_rate: float = 0.05
    run_deadline_s: float = 1.0
    voice_deadline_s: float = 0.8
    attempt_timeout_s: float = 0.02
    deadline_grace_s: float = 0.005


def truth(request: VoiceRequest) -> str:
    digest = hashlib.blake2b(request.prompt.encode(), digest_size=4).digest()
    return CHOICES[int.from_bytes(digest, "big") % len(CHOICES)]


def one_of_choices(response: VoiceResponse) -> str | None:
    return None if response.text in CHOICES else f"answer must be one of {list(CHOICES)}"


def faults(s: ChaosSettings) -> Faults:
    f = s.fail_rate
    errors = {
        ProviderUnavailableError: 0.45 * f,
        RateLimitedError: 0.25 * f,
        MalformedResponseError: 0.2 * f,
        AuthenticationError: 0.1 * f,  # not retryable: becomes a failed vote
    }
    return Faults(errors, s.hang_rate, s.garbage_rate, retry_after=0.002)


def policy_stack(voice: Voice, s: ChaosSettings, reg: PolicyRegistries, seed: int) -> Voice:
    """The policies every voice gets, outermost first; their state lives in ``reg``."""
    return with_policies(
        voice,
        DeadlinePolicy(s.voice_deadline_s),
        ValidationPolicy(validator=one_of_choices, max_reasks=1),
        RetryPolicy(
            max_attempts=3, base_delay=0.002, max_delay=0.01, max_retry_after=0.05, seed=seed
        ),
        CircuitPolicy(
            settings=CircuitSettings(failure_rate=0.6, min_calls=20, window_s=5, cooldown_s=0.5),
            registry=reg.circuits,
        ),
        HedgePolicy(
            quantile=0.95, min_samples=50, default_delay=0.01, min_delay=0.005, stats=reg.stats
        ),
        TimeoutPolicy(s.attempt_timeout_s),
        RateLimitPolicy(
            RateLimits(requests_per_minute=1e7, max_concurrency=64), registry=reg.rate_limits
        ),
    )  # fmt: skip


def build_voices(
    s: ChaosSettings, chaos: bool, reg: PolicyRegistries
) -> tuple[list[Voice], list[FaultyVoice]]:
    wrapped, faulty = [], []
    for i in range(s.voices):
        base = SeededVoice(
            f"v{i}", seed=s.seed + i, accuracy=s.accuracy, choices=CHOICES, truth=truth
        )
        fv = FaultyVoice(base, faults(s) if chaos else Faults(), seed=1000 * s.seed + i)
        faulty.append(fv)
        wrapped.append(policy_stack(fv, s, reg, seed=s.seed + i))
    return wrapped, faulty


@dataclass
class Tally:
    correct: int = 0
    results: int = 0
    unhandled: int = 0
    deadline_misses: int = 0
    orphan_tasks: int = 0
    faulty_calls: int = 0
    untraced_faults: int = 0
    injected_faults: int = 0
    typed_errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


def _untraced(trace: Trace) -> tuple[int, int]:
    """(voice calls with injected faults, of which left no policy evidence in the trace)."""
    faulty = untraced = 0
    for span in trace.find(SpanKind.VOICE):
        attrs = span.attributes or {}
        if "faults_injected" not in attrs:
            continue
        faulty += 1
        visible = span.status in (SpanStatus.ERROR, SpanStatus.CANCELLED)
        if not visible and not any(k in attrs for k in EVIDENCE):
            untraced += 1
    return faulty, untraced


async def run_phase(s: ChaosSettings, chaos: bool) -> Tally:
    """Run ``s.runs`` workflow runs, ``s.concurrency`` at a time."""
    reg = PolicyRegistries()  # fresh circuits, limiters and statistics for each phase
    voices, faulty = build_voices(s, chaos, reg)
    wf = WorkflowBuilder("chaos", timeout=s.run_deadline_s).consensus("vote", voices).build()
    tally = Tally()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, _ctx: _count_unhandled(tally))

    async def one(i: int) -> None:
        req = {"prompt": f"question {s.seed}-{i}", "choices": list(CHOICES)}
        started = time.perf_counter()
        try:
            with recording_stats(reg.stats):
                result = await wf.run(req)
        except AiOrchestrationError as exc:
            tally.typed_errors[type(exc).__name__] += 1
        except Exception:
            tally.unhandled += 1
        else:
            tally.results += 1
            answer = getattr(result.output, "answer", None)
            tally.correct += answer == truth(VoiceRequest.from_prompt(req["prompt"]))  # type: ignore[arg-type]
            faulty, untraced = _untraced(result.trace)
            tally.faulty_calls += faulty
            tally.untraced_faults += untraced
        elapsed = time.perf_counter() - started
        tally.latencies.append(elapsed)
        tally.deadline_misses += elapsed > s.run_deadline_s + s.deadline_grace_s

    me = asyncio.current_task()
    for start in range(0, s.runs, s.concurrency):
        async with asyncio.TaskGroup() as tg:
            for i in range(start, min(s.runs, start + s.concurrency)):
                tg.create_task(one(i))
        tally.orphan_tasks += len(asyncio.all_tasks() - {me})  # type: ignore[operator]
    loop.set_exception_handler(None)
    tally.injected_faults = sum(n for fv in faulty for k, n in fv.injected.items() if k != "ok")
    return tally


def _count_unhandled(tally: Tally) -> None:
    tally.unhandled += 1


async def policy_overhead_us(n: int = 4_000, reps: int = 25) -> dict[str, float]:
    """Per-call cost of the full policy stack with no faults, vs the bare voice; both are
    called with ``respond()``, so ``call_voice`` (span, budget, stats recording) is excluded."""
    s = ChaosSettings()
    bare = SeededVoice("bare", choices=CHOICES, truth=truth)
    wrapped = policy_stack(
        SeededVoice("bare", choices=CHOICES, truth=truth), s, PolicyRegistries(), 0
    )
    req = VoiceRequest.from_prompt("question", choices=CHOICES)
    trace = Trace("overhead", "overhead")
    root = trace.start_span(SpanKind.RUN, "overhead", RunSpanData("overhead"))
    bare_us, wrapped_us = [], []
    with run_scope(RunState("overhead", trace), root):
        for _ in range(reps):
            for voice, out in ((bare, bare_us), (wrapped, wrapped_us)):
                t0 = time.perf_counter()
                for _ in range(n):
                    await voice.respond(req)
                out.append((time.perf_counter() - t0) / n * 1e6)
    b, w = min(bare_us), min(wrapped_us)  # least-disturbed repetition of each
    return {"bare_call_us": b, "wrapped_call_us": w, "policy_overhead_us": w - b}


async def run_chaos(s: ChaosSettings) -> dict[str, Any]:
    """The whole benchmark; returns what ``chaos.json`` holds."""
    clean = await run_phase(s, chaos=False)
    chaos = await run_phase(s, chaos=True)
    overhead = await policy_overhead_us()
    lat = sorted(chaos.latencies)
    return {
        "runs": s.runs,
        "unhandled": chaos.unhandled + clean.unhandled,
        "orphan_tasks": chaos.orphan_tasks + clean.orphan_tasks,
        "deadline_misses": chaos.deadline_misses + clean.deadline_misses,
        "accuracy_clean": clean.correct / s.runs,
        "accuracy_chaos": chaos.correct / s.runs,
        "policy_overhead_us": round(overhead["policy_overhead_us"], 2),
        "bare_call_us": round(overhead["bare_call_us"], 2),
        "wrapped_call_us": round(overhead["wrapped_call_us"], 2),
        "results_chaos": chaos.results,
        "typed_errors_chaos": dict(chaos.typed_errors),
        "faulty_voice_calls": chaos.faulty_calls,
        "faulty_calls_untraced": chaos.untraced_faults,
        "run_latency_p50_ms": round(1000 * lat[len(lat) // 2], 2),
        "run_latency_max_ms": round(1000 * lat[-1], 2),
        "settings": asdict(s),
    }


def main() -> dict[str, Any]:
    from benchmarks._common import print_table, write_result

    data = asyncio.run(run_chaos(ChaosSettings()))
    path = write_result("chaos", data)
    rows = [
        (k, data[k])
        for k in (
            "runs", "unhandled", "orphan_tasks", "deadline_misses", "accuracy_clean",
            "accuracy_chaos", "results_chaos", "faulty_voice_calls", "faulty_calls_untraced",
            "run_latency_p50_ms", "run_latency_max_ms", "bare_call_us", "wrapped_call_us",
            "policy_overhead_us",
        )
    ]  # fmt: skip
    rows.append(("typed_errors_chaos", data["typed_errors_chaos"]))
    print_table(
        "Chaos: 5-voice consensus, 30 % fail / 5 % hang / 5 % garbage", ["metric", "value"], rows
    )
    print(f"\nwrote {path}")
    return data


if __name__ == "__main__":
    main()
