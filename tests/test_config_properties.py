"""Property: whatever bytes or odd Unicode a user puts in a config value or a file, the outcome
is an answer or an ``AiOrchestrationError`` — in the CLI one line, exit 2 for user errors,
never an internal error — and the next, unrelated run is unaffected."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, cli
from ai_orchestration.config import build_voices, read_config
from ai_orchestration.errors import AiOrchestrationError, UserError
from ai_orchestration.testing import FunctionVoice

runner = CliRunner()
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text a user should not be able to break us with: controls, NUL, lone surrogates, RTL marks,
# combining marks, emoji, full-width and look-alike letters.
ODD = st.sampled_from(
    ["\x00", "\ud800", "\udcff", "\u202e", "\u0301", "💥", "Ｋｅｙ", "\u212a", "\n", "\t", "\\"]
)
TEXT = st.one_of(st.text(max_size=30), st.lists(ODD, min_size=1, max_size=4).map("".join))
SCALAR = st.one_of(
    TEXT,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
# Where in a config a value lands.
PATHS = st.sampled_from(
    [
        ("state_dir",),
        ("store",),
        ("consensus", "method"),
        ("consensus", "votes"),
        ("consensus", "min_votes"),
        ("consensus", "abstain_below"),
        ("run", "timeout"),
        ("run", "max_input_chars"),
        ("tracing", "redact_io"),
        ("budget", "max_calls"),
        ("voices",),
        ("voices", 0, "spec"),
        ("voices", 0, "name"),
        ("voices", 0, "options", "timeout"),
        ("voices", 0, "options", "api_key"),
        ("voices", 0, "options", "temperature"),
        ("voices", 0, "options", "headers"),
        ("policies",),
        ("policies", "defaults", "timeout"),
        ("routing",),
        ("routing", "rules"),
        ("unknown",),
    ]
)


def fakes() -> list[FunctionVoice]:
    return [FunctionVoice(n, lambda r: "Paris") for n in ("a", "b")]


def base_config(state: Path) -> dict[str, Any]:
    return {
        "state_dir": str(state),
        "consensus": {"method": "majority", "embed": "none"},
        "voices": [
            {"spec": "openai-compat:m@http://127.0.0.1:9/v1", "name": "a"},
            {"spec": "openai-compat:m@http://127.0.0.1:9/v1", "name": "b"},
        ],
    }


def planted(state: Path, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    cfg = base_config(state)
    if path == ("state_dir",) and isinstance(value, str):  # stay inside the test's folder
        value = str(state / value.replace("/", "_").replace("..", "_"))
    node: Any = cfg
    for part in path[:-1]:
        nxt = node[part] if isinstance(part, int) or part in node else {}
        node[part] = nxt
        node = nxt
    node[path[-1]] = value
    return cfg


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def outcome(source: Any, *, build: bool = True) -> str:
    """``"answer"``, or the kind of library error; anything else fails the property. With
    ``build`` the configured voices are built too (nothing calls them); the run itself uses
    fake voices, as the CLI below does."""
    try:
        cfg, where = read_config(source)
        if build:
            build_voices(cfg.voices, where)
        with AiOrchestration(source, voices=fakes()) as system:
            system.process("Capital of France?")
    except AiOrchestrationError as exc:
        assert "\n" not in " ".join(str(exc).split())
        return "user" if isinstance(exc, UserError) else "run"
    return "answer"


def cli_outcome(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(cli, "_system", lambda config: AiOrchestration(config, voices=fakes()))
    result = runner.invoke(cli.app, args)
    err = result.stderr
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "internal error" not in err and "Traceback" not in err, err
    if result.exit_code:
        assert err.startswith("error: ") and err.count("\n") == 1, err
    return result.exit_code


def next_run_is_fine(state: Path) -> None:
    with AiOrchestration(base_config(state / "clean"), voices=fakes()) as system:
        assert system.process("Capital of France?").answer == "Paris"


@SETTINGS
@given(path=PATHS, value=VALUE)
def test_any_config_value_gives_an_answer_or_a_library_error(
    path: tuple[str | int, ...], value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with folder() as tmp:
        cfg = planted(tmp / "state", path, value)
        kinds = {outcome(cfg)}
        try:
            text = yaml.safe_dump(cfg, allow_unicode=True)
        except yaml.YAMLError:
            text = None
        if text is not None:  # the same value written in a YAML file, through the CLI
            file = tmp / "app.yaml"
            file.write_text(text, encoding="utf-8", errors="surrogateescape")
            kinds.add(outcome(file))
            code = cli_outcome(["process", "-c", str(file), "Capital of France?"], monkeypatch)
            assert code == {"answer": 0, "run": 1, "user": 2}[outcome(file, build=False)]
        assert kinds <= {"answer", "user", "run"}
        next_run_is_fine(tmp)


CONTENT = st.one_of(
    st.binary(max_size=200),
    TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(lambda v: json.dumps(v).encode(), VALUE),  # JSON escapes lone surrogates
)


@SETTINGS
@given(content=CONTENT, suffix=st.sampled_from([".toml", ".yaml", ".yml", ".json", ""]))
def test_any_file_content_gives_an_answer_or_exit_2(
    content: bytes, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with folder() as tmp:
        file = tmp / f"f{suffix}"
        file.write_bytes(content)
        flow = tmp / "flow.yaml"
        flow.write_text(
            f"name: f\ntrace_dir: {tmp / 'traces'}\n"
            "steps:\n  - {name: a, call: 'tests.fixtures.steps:shout'}\n"
        )
        for args in (
            ["process", "-c", str(file), "Capital of France?"],
            ["run", str(file), "-i", "x"],
            ["trace", str(file)],
            ["route", "-c", str(file), "--explain", "x"],
            ["stats", "-c", str(file)],
        ):
            assert cli_outcome(args, monkeypatch) in (0, 2), args
        # As an input, the content reaches the workflow's own step, which may fail on it: a
        # run error (exit 1), still one line and never an internal error.
        cli_outcome(["run", str(flow), "-i", f"@{file}"], monkeypatch)
        next_run_is_fine(tmp)
