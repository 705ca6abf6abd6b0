"""Shared helpers for benchmarks: result files and printed tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine description added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        **data,
        "_meta": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "commit": _commit(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    }
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def merge_result(name: str, writer: str, data: dict[str, Any]) -> Path:
    """Add ``data``'s keys to ``benchmarks/results/<name>.json`` and keep the keys other
    benchmarks wrote there (read, merge, write): several benchmarks share one file.
    ``_meta`` holds one machine description per ``writer``."""
    path = RESULTS / f"{name}.json"
    old: dict[str, Any] = orjson.loads(path.read_bytes()) if path.exists() else {}
    metas = old.pop("_meta", {})
    if not isinstance(metas, dict) or "commit" in metas:  # a file written by write_result
        metas = {}
    written = orjson.loads(write_result(name, {**old, **data}).read_bytes())
    written["_meta"] = {**metas, writer: written["_meta"]}
    path.write_bytes(orjson.dumps(written, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def _commit() -> str:
    """The commit measured, with ``-dirty`` when the working tree had changes."""
    root = Path(__file__).parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # results files are written by the benchmarks themselves: they do not make the code dirty
    changed = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"
    )
    return head + ("-dirty" if changed else "")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1]) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain Markdown table (pasteable into the README)."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(fmt(v) for v in row) + " |")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
