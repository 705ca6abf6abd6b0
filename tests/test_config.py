"""Config loading: files, mappings, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_orchestration import ConfigError
from ai_orchestration.config import load_config, parse_join
from ai_orchestration.workflow import All, Deadline, FirstSuccess, Quorum


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.toml",
        '[consensus]\nmethod = "weighted"\nvotes = "quorum:2"\n\n'
        '[[voices]]\nspec = "openai:gpt-4o-mini"\nname = "gpt"\n'
        '[[voices]]\nspec = "anthropic:claude-sonnet-4"\n',  # quorum:2 needs two voices
    )
    cfg = load_config(path)
    assert cfg.consensus.method == "weighted"
    assert cfg.voices[0].spec == "openai:gpt-4o-mini" and cfg.voices[0].name == "gpt"


def test_yaml_file_and_spec_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "voices:\n  - local:gemma\n  - embedding:e5\n")
    cfg = load_config(path)
    assert [v.spec for v in cfg.voices] == ["local:gemma", "embedding:e5"]


def test_yaml_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "state_dir: x\nconsensus:\n  method: psychic\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 3, "consensus.method")
    assert str(err).startswith(f"{path}:3: consensus.method: ")


def test_toml_error_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "c.toml", 'state_dir = "x"\n\n[run]\ntimeout = -5\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.line, info.value.field) == (4, "run.timeout")


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.toml", 'a = 1\nb = "unterminated\n')
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(path)
    assert info.value.line == 2


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_config(path)
    assert info.value.line is not None and info.value.line >= 2


def test_unknown_field_and_bad_voice_spec() -> None:
    with pytest.raises(ConfigError, match="colour"):
        load_config({"colour": "blue"})
    with pytest.raises(ConfigError, match=r"voices\[0\].spec"):
        load_config({"voices": ["no-provider"]})


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="unsupported config format"):
        load_config(write(tmp_path, "c.ini", "[x]"))


def test_parse_join() -> None:
    assert parse_join("all") == All()
    assert parse_join("first") == FirstSuccess()
    assert parse_join("quorum:3") == Quorum(3)
    assert parse_join("deadline:0.5") == Deadline(0.5)
    for bad in ("most", "quorum:x", "all:2", "deadline:"):
        with pytest.raises(ValueError, match="not one of"):
            parse_join(bad)
