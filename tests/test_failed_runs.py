"""A run where every voice fails says who failed and why, and is recorded for ``stats``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai_orchestration import AiOrchestration, ConsensusError
from ai_orchestration.cli import app
from ai_orchestration.errors import ProviderUnavailableError, VoiceTimeoutError
from ai_orchestration.testing import ScriptedVoice


def test_total_failure_names_each_voice_and_is_recorded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    down = ProviderUnavailableError(
        "HTTP 503 from openai (key sk-live-abcdefghijklmnop)", voice="gpt", status=503
    )
    voices = [
        ScriptedVoice("gpt", [down]),
        ScriptedVoice("claude", [VoiceTimeoutError("no answer within 5s", voice="claude")]),
    ]
    cfg = {"state_dir": str(state), "consensus": {"method": "majority", "embed": "none"}}
    with AiOrchestration(cfg, voices=voices) as system:
        with pytest.raises(ConsensusError) as info:
            system.process("Capital of France?")
        assert str(info.value) == (
            "quorum not met: 0 valid vote(s) of 2, 1 required:\n"
            "  gpt: HTTP 503 from openai (key [REDACTED])\n"
            "  claude: no answer within 5s"
        )
        run_id = info.value.run_id  # type: ignore[attr-defined]
        system.recorder.flush()
        record = system.store.get_run(run_id)
    assert record is not None and record.answer is None
    assert record.error == str(info.value)
    assert sorted((v["voice"], v["answer"]) for v in record.votes) == [
        ("claude", None),
        ("gpt", None),
    ]
    assert sorted((voice, ok) for voice, _, ok, _ in record.calls) == [
        ("claude", False),
        ("gpt", False),
    ]
    config = tmp_path / "app.toml"
    config.write_text(f'state_dir = "{state}"\n')
    out = CliRunner().invoke(app, ["stats", "-c", str(config), "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)["voices"]
    assert (shown["gpt"]["calls"], shown["gpt"]["errors"]) == (1, 1)  # the outage shows
    assert (shown["claude"]["calls"], shown["claude"]["errors"]) == (1, 1)
