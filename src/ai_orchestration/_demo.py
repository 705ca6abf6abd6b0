"""``ai-orchestration demo``: a few questions answered by the embedded default voices."""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["DEMO_QUESTIONS", "run_demo"]

DEMO_QUESTIONS: tuple[dict[str, Any], ...] = (
    {"prompt": "What is the capital of France?", "choices": ["Paris", "Lyon", "Berlin", "Madrid"]},
    {
        "prompt": "Which planet is known as the Red Planet?",
        "choices": ["Venus", "Mars", "Jupiter", "Saturn"],
    },
    {"prompt": "What do bees make?", "choices": ["milk", "honey", "silk", "wax paper"]},
    {"prompt": "How many legs does a spider have?", "choices": ["six", "eight", "ten", "four"]},
    {"prompt": "What is the capital of Japan?"},
)


def run_demo(system: Any, *, out: Console, err: Console, as_json: bool = False) -> None:
    """Answer ``DEMO_QUESTIONS`` with ``system``; print answer, confidence, votes, trace."""
    results = []
    started = time.perf_counter()
    names = ", ".join(v.name for v in system.voices)
    if not as_json:
        out.print(f"[bold]voices[/]: {names}  ·  [bold]method[/]: {system.config.consensus.method}")
    for q in DEMO_QUESTIONS:
        label = q["prompt"] + (f"  [{' / '.join(q['choices'])}]" if "choices" in q else "")
        if as_json:
            result = system.process(q)
        else:
            with err.status(f"asking the voices: {q['prompt']}"):
                result = system.process(q)
        results.append(result)
        if as_json:
            continue
        answer = "no consensus (abstained)" if result.abstained else result.answer
        out.print(f"\n[bold cyan]Q[/] {escape(label)}", highlight=False)
        out.print(
            f"[bold]A[/] {answer}   [dim]confidence {result.confidence:.3f}[/]", highlight=False
        )
        table = Table("voice", "vote", "weight", "ms", show_edge=False, pad_edge=False)
        for v in result.votes:
            vote = escape(str(v.answer)) if v.ok else f"[red]no vote[/] {escape(str(v.error))}"
            weight = result.consensus.weights.get(v.voice, 0.0)
            table.add_row(v.voice, vote, f"{weight:.3f}", f"{v.latency_s * 1000:.0f}")
        out.print(table)
        out.print(
            f"[dim]run {result.run_id} · trace {result.trace_path}[/]",
            highlight=False,
            soft_wrap=True,
        )
    if as_json:
        payload = [r.to_dict() for r in results]
        sys.stdout.write(orjson.dumps(payload, default=str).decode() + "\n")
        return
    took = time.perf_counter() - started
    out.print(f"\n{len(results)} questions in {took:.1f}s; traces under {system.state_dir}/traces")
    out.print("show one as a tree: ai-orchestration trace <trace path>")
