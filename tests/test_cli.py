"""The CLI: JSON output, one-line errors with exit code 2, workflow files, traces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, cli
from ai_orchestration.testing import FunctionVoice

runner = CliRunner()


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_orchestration", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def fake_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def build(config: Any) -> AiOrchestration:
        cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
        voices = [FunctionVoice(n, lambda r: "Paris") for n in ("v1", "v2")]
        return AiOrchestration(cfg, voices=voices)

    monkeypatch.setattr(cli, "_system", build)


def test_process_json_prints_one_object(fake_system: None) -> None:
    result = runner.invoke(cli.app, ["process", "--json", "Capital of France?"])
    assert result.exit_code == 0, result.output
    payload = orjson.loads(result.stdout)
    assert payload["answer"] == "Paris"
    assert 0 < payload["confidence"] <= 1
    assert {v["voice"] for v in payload["votes"]} == {"v1", "v2"}
    assert len(payload["run_id"]) == 32


def test_process_table_output(fake_system: None) -> None:
    result = runner.invoke(cli.app, ["process", "Capital?", "--choices", "Paris,Lyon"])
    assert result.exit_code == 0
    assert "Paris" in result.stdout and "run id" in result.stdout


def test_table_output_shows_answers_that_look_like_markup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def build(config: Any) -> AiOrchestration:
        cfg = {"state_dir": str(tmp_path), "consensus": {"method": "majority", "embed": "none"}}
        return AiOrchestration(cfg, voices=[FunctionVoice(n, lambda r: "[b]") for n in "xy"])

    monkeypatch.setattr(cli, "_system", build)
    result = runner.invoke(cli.app, ["process", "which option?"])
    assert result.exit_code == 0
    assert "answer      [b]" in result.stdout
    assert result.stdout.count("[b]") == 3  # the answer and both votes


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("consensus:\n  method: psychic\n")
    proc = run_cli("process", "--config", str(cfg), "hello")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {cfg}:2: consensus.method:")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_empty_prompt_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run_cli("process", "   ", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: input prompt is empty"


def test_missing_workflow_file_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "none.yaml"), "--input", "x")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot read config file" in proc.stderr


def test_help_everywhere() -> None:
    for args in ([], ["process"], ["run"], ["demo"], ["bench"], ["trace"]):
        result = runner.invoke(cli.app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout


def write_workflow(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(f"trace_dir: {tmp_path / 'traces'}\n" + body)
    return path


def test_run_workflow_file_with_route(tmp_path: Path) -> None:
    path = write_workflow(
        tmp_path,
        "name: shouty\n"
        "steps:\n"
        "  - {name: pick, route: 'tests.fixtures.steps:by_length'}\n"
        "  - {name: loud, call: 'tests.fixtures.steps:shout', when: long}\n"
        "  - {name: bang, call: 'tests.fixtures.steps:exclaim', after: [pick], when: short}\n"
        "output: [loud, bang]\n",
    )
    proc = run_cli("run", str(path), "--input", "hello world", "--json", cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    payload = orjson.loads(proc.stdout)
    assert payload["output"] == {"loud": "HELLO WORLD", "bang": None}
    trace = run_cli("trace", payload["trace_path"])
    assert trace.returncode == 0
    assert "✓ step:loud" in trace.stdout and "· step:bang" in trace.stdout


def test_workflow_file_errors_name_the_field(tmp_path: Path) -> None:
    path = write_workflow(
        tmp_path,
        "name: broken\nsteps:\n  - {name: a, call: 'tests.fixtures.steps:nope'}\n",
    )
    proc = run_cli("run", str(path), "--input", "x", cwd=Path.cwd())
    assert proc.returncode == 2
    assert "steps[0].call" in proc.stderr and "cannot import" in proc.stderr
    assert "has no attribute 'nope'" in proc.stderr  # the function is missing, not the module
    path = write_workflow(tmp_path, "name: broken\nsteps:\n  - {name: a}\n")
    proc = run_cli("run", str(path), "--input", "x")
    assert proc.returncode == 2 and "exactly one of" in proc.stderr and ":4:" in proc.stderr


@pytest.mark.llm
def test_process_json_on_the_real_local_voices(tmp_path: Path) -> None:
    proc = run_cli(
        "process",
        "--json",
        "--choices",
        "Paris,Lyon,Berlin",
        "What is the capital of France?",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = orjson.loads(proc.stdout)
    assert {"answer", "confidence", "run_id", "votes"} <= payload.keys()
    assert payload["answer"] in {"Paris", "Lyon", "Berlin"}
    assert len(payload["votes"]) >= 3
    assert any("gemma" in v["voice"] for v in payload["votes"])
    assert Path(tmp_path, payload["trace_path"]).exists()


def test_error_text_prints_literally(capsys: pytest.CaptureFixture[str]) -> None:
    """Rich must not read an error as markup or emoji codes (':x:' is no icon, '[b]' no tag)."""
    from ai_orchestration.errors import VoiceError

    @cli.one_line_errors
    def failing() -> None:
        raise VoiceError("openai-compat:x: cannot connect [b]here[/b] :smile:", voice="x")

    with pytest.raises(cli.typer.Exit) as exited:
        failing()
    assert exited.value.exit_code == 1
    expected = "error: voice 'x': openai-compat:x: cannot connect [b]here[/b] :smile:\n"
    assert capsys.readouterr().err == expected


def test_a_run_is_recorded_and_listed(tmp_path: Path) -> None:
    """``ai-orchestration run`` records its run in the store; ``runs list --json`` shows it."""
    config = tmp_path / "app.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    path = write_workflow(
        tmp_path, "name: loud\nsteps:\n  - {name: up, call: 'tests.fixtures.steps:shout'}\n"
    )
    proc = run_cli("run", str(path), "--input", "hi", "-c", str(config), "--json", cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr
    run_id = orjson.loads(proc.stdout)["run_id"]
    listed = run_cli("runs", "list", "-c", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = orjson.loads(listed.stdout)["runs"]
    assert (row["run_id"], row["workflow"], row["status"]) == (run_id, "loud", "ok")
    assert 0 <= row["duration_s"] < 5 and abs(row["started"] - time.time()) < 60
    with AiOrchestration(config) as system:
        record = system.store.get_run(run_id)
    assert record is not None and (record.input, record.answer) == ("hi", "HI")
    assert run_cli("runs", "list", "-c", str(config), "-w", "other", "--json").stdout == (
        '{"runs":[]}\n'
    )
