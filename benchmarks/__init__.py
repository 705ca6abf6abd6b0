"""Benchmarks: one ``bench_*.py`` module per benchmark, each with ``main() -> dict``."""
