"""``ai-orchestration demo``: a few questions answered by the embedded default voices."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["DEMO_QUESTIONS", "answer_text", "run_demo", "votes_table"]

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


def answer_text(result: Any) -> str:
    """The answer as shown to a person (markup-safe)."""
    return "no consensus (abstained)" if result.abstained else escape(str(result.answer))


def votes_table(result: Any) -> Table:
    """Who voted what, with which weight and latency (failed voices shown as such; a voice
    that picked among the other voices' answers says among how many, one answered by its
    fallback says which)."""
    table = Table("voice", "vote", "weight", "ms", show_edge=False, pad_edge=False)
    weights = result.consensus.weights
    selection = result.consensus.explanation.get("selection", {})
    answered_by = result.consensus.explanation.get("answered_by", {})
    for v in result.votes:
        if v.ok:
            vote = escape(str(v.answer))
        elif v.abstained:  # by choice (e.g. nothing to select among)
            vote = f"[dim]{escape(str(v.error))}[/]"
        else:
            vote = f"[red]no vote[/] {escape(str(v.error))}"
        if v.ok and v.voice in selection:
            vote += f" [dim](picked among {len(selection[v.voice])})[/]"
        if v.voice in answered_by:
            vote += f" [dim](answered by fallback {escape(answered_by[v.voice])})[/]"
        ms = f"{v.latency_s * 1000:.0f}" if v.ok else "-"
        table.add_row(v.voice, vote, f"{weights.get(v.voice, 0.0):.3f}", ms)
    return table


def run_demo(system: Any, *, out: Console, err: Console, as_json: bool = False) -> None:
    """Answer ``DEMO_QUESTIONS`` with ``system``; print answer, confidence, votes, trace."""
    results = []
    started = time.perf_counter()
    names = ", ".join(v.name for v in system.voices)
    if not as_json:
        method = system.workflow.steps[0].spec.method  # the embedded default's own pool
        out.print(f"[bold]voices[/]: {names}  ·  [bold]method[/]: {method}")
    for q in DEMO_QUESTIONS:
        label = q["prompt"] + (f"  [{' / '.join(q['choices'])}]" if "choices" in q else "")
        status = nullcontext() if as_json else err.status(f"asking the voices: {q['prompt']}")
        with status:
            result = system.process(q)
        results.append(result)
        if as_json:
            continue
        out.print(f"\n[bold cyan]Q[/] {escape(label)}", highlight=False)
        out.print(
            f"[bold]A[/] {answer_text(result)}   [dim]confidence {result.confidence:.3f}[/]",
            highlight=False,
        )
        out.print(votes_table(result))
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
