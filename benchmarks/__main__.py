"""Run every benchmark (``python -m benchmarks``) or some (``python -m benchmarks engine``)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    chosen = argv or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        return 2
    for name in chosen:
        started = time.perf_counter()
        print(f"\n=== benchmark: {name} ===")
        importlib.import_module(f"benchmarks.bench_{name}").main()
        print(f"(benchmark {name} took {time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
