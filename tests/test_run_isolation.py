"""A run's failure belongs to that run: never a later caller's, never another instance's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_orchestration import AiOrchestration, InputError, StoreError
from ai_orchestration.testing import FunctionVoice


def _system(state: Path, answer: str = "Paris") -> AiOrchestration:
    cfg = {"state_dir": str(state), "consensus": {"method": "majority", "embed": "none"}}
    return AiOrchestration(
        cfg, voices=[FunctionVoice("a", lambda r: answer), FunctionVoice("b", lambda r: answer)]
    )


@pytest.mark.parametrize(
    ("bad_input", "where"),
    [
        ("caf\udce9 ?", "input holds"),
        ({"prompt": "Capital?", "choices": ["Paris", "Ly\ud800on"]}, "input['choices'][1] holds"),
        ({"prompt": "Capital\udcff?"}, "input['prompt'] holds"),
    ],
)
def test_text_utf8_cannot_encode_is_an_input_error(
    tmp_path: Path, bad_input: Any, where: str
) -> None:
    with _system(tmp_path / "s") as system:
        with pytest.raises(InputError, match=r"UTF-8 cannot encode") as info:
            system.process(bad_input)
        assert str(info.value).startswith(where)
        assert system.process("Capital of France?").answer == "Paris"  # the next run is fine


def test_an_audit_failure_is_reported_to_its_own_run_only(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "traces").write_text("a file where the traces folder should be")
    with _system(broken) as failing, _system(tmp_path / "fine") as other:
        with pytest.raises(StoreError, match=r"audit log write failed for run [0-9a-f]{32}"):
            failing.process("Capital of France?")
        result = other.process("Capital of France?")  # another instance: not its problem
        assert result.answer == "Paris" and result.trace_path is not None
        assert result.trace_path.exists()
        assert other.process("Capital of Spain?").answer == "Paris"


def test_a_voice_answer_utf8_cannot_encode_is_kept_escaped(tmp_path: Path) -> None:
    with _system(tmp_path / "s", answer="Par\udce9s") as system:
        result = system.process("Capital of France?")
        assert result.answer == "Par\udce9s"
        record = system.store.get_run(result.run_id)
        assert record is not None and record.answer == "Par\\udce9s"
        assert result.trace_path is not None
        spans = [orjson.loads(line) for line in result.trace_path.read_bytes().splitlines()]
        voice = next(s for s in spans if s["kind"] == "voice")
        assert voice["data"]["output"] == "Par\\udce9s"
        assert system.process("Capital of Spain?").run_id != result.run_id


def test_process_after_close_reopens_the_store(tmp_path: Path) -> None:
    system = _system(tmp_path / "s")
    first = system.process("Capital of France?")
    system.close()
    second = system.process("Capital of Spain?")  # was: "Cannot operate on a closed database"
    assert second.answer == "Paris"
    system.feedback(first.run_id, "Paris")
    system.close()


def test_reliability_comes_from_the_store_alone(tmp_path: Path) -> None:
    state = tmp_path / "s"
    with _system(state) as system:
        run = system.process("Capital of France?")
        system.feedback(run.run_id, "Paris")
        assert system.store.reliability_counts() == {"a": (1.0, 0.0), "b": (1.0, 0.0)}
    # A reliability.json left behind (drifted after a kill -9) is not a second truth.
    (state / "reliability.json").write_text('{"a": [0, 275], "b": [0, 273]}')
    with _system(state) as again:
        assert dict(again.tracker.counts()) == {"a": (1.0, 0.0), "b": (1.0, 0.0)}
        again.feedback(again.process("Capital of Spain?").run_id, "Paris")
        assert again.store.reliability_counts() == {"a": (2.0, 0.0), "b": (2.0, 0.0)}
        assert dict(again.tracker.counts()) == {"a": (2.0, 0.0), "b": (2.0, 0.0)}
