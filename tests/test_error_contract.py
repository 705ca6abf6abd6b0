"""The error contract: a user error is one line on stderr naming file, line and field, exit
status 2, caught before any voice is called and before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ai_orchestration import cli
from ai_orchestration.config import _toml_line
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import registry

runner = CliRunner()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A ``counting:ANSWER`` provider whose voices record every call they get."""
    seen: list[str] = []

    def factory(model: str, *, base_url: str | None, name: str, **options: Any) -> Any:
        return FunctionVoice(name, lambda r: seen.append(name) or model)

    monkeypatch.setitem(registry._PROVIDERS, "counting", factory)
    return seen


def config(tmp_path: Path, body: str, name: str = "app.toml") -> Path:
    path = tmp_path / name
    state = tmp_path / "state"
    path.write_text(
        f'state_dir = "{state}"\n[consensus]\nmethod = "majority"\nembed = "none"\n{body}'
    )
    return path


def one_line_exit_2(args: list[str], *expected: str) -> str:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in expected:
        assert part in err, (part, err)
    assert "internal error" not in err
    return err


def test_non_utf8_config_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_bytes(b'state_dir = "x"\n# caf\xe9\n')
    one_line_exit_2(["process", "-c", str(path), "q"], f"{path}:2:", "not UTF-8", "0xe9")


def test_non_utf8_input_file_is_a_user_error(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"name: f\ntrace_dir: {tmp_path / 't'}\nsteps:\n"
        "  - {name: a, call: 'tests.fixtures.steps:shout'}\n"
    )
    data = tmp_path / "in.txt"
    data.write_bytes(b"\x80\x81 not text")
    one_line_exit_2(["run", str(flow), "--input", f"@{data}"], str(data), "not UTF-8")
    assert not (tmp_path / "t").exists()


VOICE = '[[voices]]\nspec = "counting:Paris"\nname = "a"\n'


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (  # a mistyped option of a built-in provider
            '[[voices]]\nspec = "openai-compat:m@http://127.0.0.1:9/v1"\n'
            'options = { timeout = "soon" }\n',
            ":7: voices[0].options.timeout: must be a number, not str",
        ),
        (
            '[[voices]]\nspec = "openai-compat:m@http://127.0.0.1:9/v1"\n'
            "[voices.options]\nbogus = 1\n",
            ":8: voices[0].options.bogus: unknown option 'bogus' for provider 'openai-compat'",
        ),
        (
            VOICE + '[[voices]]\nspec = "foo:bar"\n',
            ":9: voices[1].spec: unknown voice provider 'foo'",
        ),
    ],
    ids=["mistyped-option", "unknown-option", "unknown-provider"],
)
def test_voices_that_cannot_be_built_name_file_line_and_field(
    tmp_path: Path, calls: list[str], body: str, where: str
) -> None:
    path = config(tmp_path, body)
    one_line_exit_2(["process", "-c", str(path), "q"], f"{path}{where}")
    assert calls == []
    assert not (tmp_path / "state").exists()  # nothing written


@pytest.mark.parametrize(
    ("consensus", "voices", "where"),
    [
        ('votes = "quorum:5"\n', VOICE, ":3: consensus.votes: quorum of 5 votes but only 1"),
        ("min_votes = 3\n", VOICE * 1 + VOICE.replace('"a"', '"b"'), ":3: consensus.min_votes"),
        ("", VOICE + VOICE, ":9: voices[1].name: voice name 'a' is already used by voices[0]"),
    ],
    ids=["quorum", "min-votes", "duplicate-names"],
)
def test_impossible_consensus_is_caught_at_load(
    tmp_path: Path, calls: list[str], consensus: str, voices: str, where: str
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[consensus]\n{consensus}embed = "none"\n{voices}'
    )
    one_line_exit_2(["process", "-c", str(path), "q"], f"{path}{where}")
    assert calls == []
    assert not (tmp_path / "state").exists()


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    path = tmp_path / "app.toml"
    path.write_text(f'[run]\ntimeout = 5\n\nstate_dir = "{tmp_path / "taken" / "sub"}"\n')
    # TOML puts a key after [run] inside it: the error is located there, with the field.
    one_line_exit_2(["process", "-c", str(path), "q"], f"{path}:4: run.state_dir")
    path.write_text(f'state_dir = "{tmp_path / "taken"}"\n')
    one_line_exit_2(["process", "-c", str(path), "q"], f"{path}:1: state_dir", "is a file")


def write_flow(tmp_path: Path, steps: str) -> Path:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"name: f\ntrace_dir: {tmp_path / 'traces'}\n"
        "voices: {a: 'counting:Paris', b: 'counting:Lyon'}\n"
        f"steps:\n{steps}"
    )
    return flow


def test_workflow_method_typo_is_caught_before_any_voice(tmp_path: Path, calls: list[str]) -> None:
    flow = write_flow(tmp_path, "  - name: vote\n    consensus: [a, b]\n    method: majorty\n")
    one_line_exit_2(["run", str(flow), "-i", "q"], f"{flow}:7: steps[0].method")
    assert calls == [] and not (tmp_path / "traces").exists()


def test_workflow_quorum_over_its_voices_names_the_step_line(
    tmp_path: Path, calls: list[str]
) -> None:
    flow = write_flow(
        tmp_path,
        "  - {name: prep, call: 'tests.fixtures.steps:shout'}\n"
        "  - {name: vote, consensus: [a], votes: 'quorum:5', after: [prep]}\n",
    )
    one_line_exit_2(["run", str(flow), "-i", "q"], f"{flow}:6: steps[1]: step 'vote'")
    assert calls == [] and not (tmp_path / "traces").exists()


def test_workflow_voice_with_unknown_provider_names_its_line(
    tmp_path: Path, calls: list[str]
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: f\nvoices:\n  a: 'counting:x'\n  b: 'foo:bar'\n"
        "steps:\n  - {name: vote, consensus: [a, b]}\n"
    )
    one_line_exit_2(["run", str(flow), "-i", "q"], f"{flow}:4: voices.b.spec")


def test_route_on_a_config_without_routing(tmp_path: Path) -> None:
    path = config(tmp_path, VOICE)
    err = one_line_exit_2(["route", "-c", str(path), "--explain", "q"], "has no routing section")
    assert "Extra inputs" not in err


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b'{"hello": "world"}\n', b"[1, 2]\n", b'{"span_id": "x", "kind": 1}\n'],
    ids=["empty", "blank", "object", "array", "wrong-types"],
)
def test_trace_refuses_what_is_not_a_trace(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    one_line_exit_2(["trace", str(path)], str(path))


def test_trace_still_renders_a_real_audit_line(tmp_path: Path) -> None:
    record = {"span_id": 1, "parent_id": None, "kind": "run", "name": "w", "status": "ok"}
    path = tmp_path / "t.jsonl"
    path.write_bytes(orjson.dumps(record) + b"\n")
    result = runner.invoke(cli.app, ["trace", str(path)])
    assert result.exit_code == 0 and "✓ run:w" in result.stdout


@pytest.mark.parametrize("args", [[], ["process"], ["run"], ["stats"], ["route"], ["trace"]])
def test_help_shows_no_types_on_flags_and_plain_usage(args: list[str]) -> None:
    result = runner.invoke(cli.app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    out = result.stdout
    assert "<bool>" not in out and "{" not in out, out
    if args == ["process"]:
        assert "process [OPTIONS] PROMPT" in out
    if args == []:  # each command's summary is one line, not a sentence cut in two
        line = next(x for x in out.splitlines() if " stats " in x)
        assert line.rstrip(" │").endswith("from the configured store.")


def test_toml_line_finds_keys_inside_arrays_of_tables() -> None:
    text = (
        '[run]\ntimeout = 3\n[[voices]]\nspec = "a:b"\n[[voices]]\nspec = "c:d"\n'
        "[voices.options]\ntimeout = 1\n"
    )
    line: Callable[..., int | None] = _toml_line
    assert line(text, ("run", "timeout")) == 2
    assert line(text, ("voices", 1, "spec")) == 6
    assert line(text, ("voices", 1, "options", "timeout")) == 8
    assert line(text, ("voices", 0, "options", "timeout")) == 3  # no such key: its table


@pytest.mark.parametrize(
    ("consensus", "problem"),
    [
        ({"min_votes": 3}, r"min_votes = 3 but only 2 voice\(s\)"),
        ({"votes": "quorum:5"}, r"Quorum\(k=5\) needs 1 <= k <= 2 voices"),
    ],
)
def test_voices_given_in_code_are_checked_before_the_run(
    tmp_path: Path, consensus: dict[str, Any], problem: str
) -> None:
    from ai_orchestration import AiOrchestration, WorkflowError

    seen: list[str] = []
    voices = [FunctionVoice(n, lambda r: seen.append("x") or "Paris") for n in ("a", "b")]
    cfg = {"state_dir": str(tmp_path / "state"), "consensus": {**consensus, "embed": "none"}}
    with pytest.raises(WorkflowError, match=problem):
        AiOrchestration(cfg, voices=voices).process("q")
    assert seen == [] and not (tmp_path / "state").exists()


async def test_a_workflow_method_typo_fails_at_build() -> None:
    from ai_orchestration import WorkflowBuilder, WorkflowError

    voices = [FunctionVoice(n, lambda r: "Paris") for n in ("a", "b")]
    with pytest.raises(WorkflowError, match="unknown consensus method 'majorty'"):
        WorkflowBuilder("w").consensus("vote", voices, method="majorty").build()


def test_the_default_state_dir_taken_by_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".ai_orchestration").write_text("not a folder")
    one_line_exit_2(["process", "q"], "state_dir: '.ai_orchestration' is a file, not a folder")
