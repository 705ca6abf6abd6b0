"""The house stays as drawn: no import cycles among the package's modules, and the lower
floors never import the upper ones (module-level imports; ``TYPE_CHECKING`` blocks and the
imports inside functions, which load lazily, are not edges)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import ai_orchestration

ROOT = Path(ai_orchestration.__file__).parent
PKG = "ai_orchestration"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def graph() -> dict[str, frozenset[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: frozenset(_imports(name, path, modules)) for name, path in modules.items()}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # imports inside a function run when it is called: lazy, not an edge
        for n in ast.walk(node):
            if isinstance(n, ast.ImportFrom) and n.module is not None:
                base = n.module
                if n.level:
                    base = ".".join(
                        [*package.split(".")[: len(package.split(".")) - n.level + 1], base]
                    )
                out |= {f"{base}.{a.name}" for a in n.names} | {base}
            elif isinstance(n, ast.Import):
                out |= {a.name for a in n.names}
    return {m for m in out if m in modules and m != name}


def _within(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _related(a: str, b: str) -> bool:
    """A package and its own submodules (``__init__`` re-exports are not a cycle)."""
    return _within(a, b) or _within(b, a)


def test_no_import_cycles() -> None:
    g, state, stack, cycles = graph(), {}, [], []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for dep in sorted(g[module]):
            if _related(module, dep):
                continue
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = "done"

    for module in sorted(g):
        if module not in state:
            visit(module)
    assert not cycles, cycles


# room → the rooms of ours it may import (besides itself)
ALLOWED = {
    f"{PKG}.errors": set(),
    f"{PKG}.context": set(),
    f"{PKG}.consensus": {f"{PKG}.errors", f"{PKG}._lazy"},
    f"{PKG}.engine._join": {f"{PKG}.errors", f"{PKG}.workflow"},
    f"{PKG}.engine._codec": {f"{PKG}.errors"},
    f"{PKG}.voices": {
        f"{PKG}.errors", f"{PKG}._lazy", f"{PKG}._secret", f"{PKG}.context",
        f"{PKG}.tracing._redact",
    },
    # the definition: never the execution, the facade or the CLI
    f"{PKG}.workflow": {f"{PKG}.errors", f"{PKG}._policy", f"{PKG}.voices"},
    f"{PKG}._validate": {f"{PKG}.errors", f"{PKG}.workflow"},
}  # fmt: skip
# the upper floors nothing below them imports
TOP = {f"{PKG}.orchestrator", f"{PKG}.cli", f"{PKG}._demo", f"{PKG}.__main__"}


def test_lower_floors_never_import_upper_ones() -> None:
    g = graph()
    wrong = []
    for room, allowed in ALLOWED.items():
        for module in (m for m in g if _within(m, room)):
            for dep in g[module]:
                ok = _within(dep, room) or any(_within(dep, a) for a in allowed)
                ok = ok or (dep == PKG + ".voices" and room.startswith(PKG + ".voices"))
                if not ok:
                    wrong.append(f"{module} imports {dep}")
    for module, deps in g.items():
        if module in TOP or module == PKG:
            continue
        wrong += [f"{module} imports {dep}" for dep in deps if dep in TOP and module != dep]
    assert not wrong, wrong
