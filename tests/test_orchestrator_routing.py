"""The config's ``routing`` section decides which voices answer each ``process`` call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_orchestration import AiOrchestration, ConfigError, ProviderUnavailableError
from ai_orchestration.policies import CircuitSettings, FakeClock, PolicyRegistries
from ai_orchestration.testing import FunctionVoice

ROUTING: dict[str, Any] = {
    "default": ["en1", "en2", "en3"],
    "panel": 2,
    "rules": [
        {"name": "french", "priority": 10, "when": {"language": "fr"}, "voices": ["fr"]},
        {"name": "all", "when": {"tags_any": ["hard"]}, "panel": 4,
         "voices": ["en1", "en2", "en3", "fr"]},
    ],
}  # fmt: skip


def voices(calls: list[str], failing: tuple[str, ...] = ()) -> list[FunctionVoice]:
    def make(name: str) -> FunctionVoice:
        def answer(_: Any) -> str:
            calls.append(name)
            if name in failing:
                raise ProviderUnavailableError("503", voice=name)
            return "Paris"

        return FunctionVoice(name, answer)

    return [make(n) for n in ("en1", "en2", "en3", "fr")]


def system(
    tmp_path: Path,
    vs: list[FunctionVoice],
    routing: Any = ROUTING,
    registries: PolicyRegistries | None = None,
) -> AiOrchestration:
    cfg = {
        "state_dir": str(tmp_path / "state"),
        "consensus": {"method": "majority", "embed": "none"},
        "routing": routing,
    }
    return AiOrchestration(cfg, voices=vs, registries=registries)


def test_a_matching_rule_picks_the_voices_that_answer(tmp_path: Path) -> None:
    calls: list[str] = []
    s = system(tmp_path, voices(calls))
    result = s.process("Quelle est la capitale de la France ?")
    assert [v.voice for v in result.votes] == ["fr"] and calls == ["fr"]
    assert result.route is not None and result.route.rule == "french"
    assert result.to_dict()["route"]["voices"] == ["fr"]
    calls.clear()
    result = s.process({"prompt": "Which city is the capital of France?", "tags": ["hard"]})
    assert sorted(calls) == ["en1", "en2", "en3", "fr"] and result.route.rule == "all"  # type: ignore[union-attr]
    s.close()


def test_the_default_list_answers_as_a_panel_and_the_trace_records_the_route(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    s = system(tmp_path, voices(calls))
    result = s.process("What is the capital of France?")
    assert sorted(calls) == ["en1", "en2"]  # panel of 2; en3 stays a fallback
    assert result.route is not None and result.route.fallbacks == ("en3",)
    assert result.trace_path is not None
    spans = [orjson.loads(line) for line in result.trace_path.read_bytes().splitlines()]
    run = next(sp for sp in spans if sp["kind"] == "run")
    assert run["attributes"]["route"] == {
        "rule": None, "voices": ["en1", "en2"], "fallbacks": ["en3"], "reason": "default",
        "skipped": [], "healthy": True,
    }  # fmt: skip
    s.close()


def test_a_failing_panel_member_falls_back_to_its_spare(tmp_path: Path) -> None:
    calls: list[str] = []
    s = system(tmp_path, voices(calls, failing=("en1",)))
    result = s.process("What is the capital of France?")
    assert sorted(calls) == ["en1", "en2", "en3"]
    assert result.answer == "Paris" and all(v.ok for v in result.votes)
    assert result.consensus.explanation["answered_by"] == {"en1": "en3"}
    s.close()


def test_an_open_circuit_routes_around_the_voice_without_calling_it(tmp_path: Path) -> None:
    registries = PolicyRegistries()
    breaker = registries.circuits.get(
        "en1", CircuitSettings(min_calls=1, cooldown_s=60), FakeClock()
    )
    breaker.on_failure(breaker.acquire())
    calls: list[str] = []
    s = system(tmp_path, voices(calls), registries=registries)
    result = s.process("What is the capital of France?")
    assert sorted(calls) == ["en2", "en3"]
    assert result.route is not None and result.route.skipped == (
        "'en1' skipped: circuit 'en1' is open",
    )


def test_without_a_match_or_default_every_voice_answers(tmp_path: Path) -> None:
    calls: list[str] = []
    routing = {"rules": [{"name": "french", "when": {"language": "fr"}, "voices": ["fr"]}]}
    result = system(tmp_path, voices(calls), routing).process("What is the capital of France?")
    assert sorted(calls) == ["en1", "en2", "en3", "fr"] and result.route is None


def test_a_routing_rule_naming_an_unknown_voice_fails_at_construction(tmp_path: Path) -> None:
    routing = {"rules": [{"name": "r", "voices": ["en1", "ghost"]}]}
    with pytest.raises(ConfigError) as info:
        system(tmp_path, voices([]), routing)
    assert info.value.field == "routing.rules[0].voices[1]" and "ghost" in str(info.value)


def test_the_routing_section_of_a_config_file_hot_reloads(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    body = (
        "state_dir: {}\nconsensus: {{method: majority, embed: none}}\nrouting:\n  default: [{}]\n"
    )
    path.write_text(body.format(tmp_path / "state", "en1"))
    calls: list[str] = []
    s = AiOrchestration(path, voices=voices(calls))
    assert s.router is not None
    s.router.check_interval = 0.0
    s.process("q")
    path.write_text(body.format(tmp_path / "state", "fr"))
    os.utime(path, ns=(1, 2))  # a different mtime even on coarse clocks
    s.process("q")
    path.write_text(body.format(tmp_path / "state", "ghost"))  # bad: the last good one stays
    os.utime(path, ns=(3, 4))
    s.process("q")
    assert calls == ["en1", "fr", "fr"]
    assert s.router.last_error is not None and "ghost" in s.router.last_error
    s.close()


def test_a_panel_smaller_than_min_votes_fails_at_construction(tmp_path: Path) -> None:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none", "min_votes": 2},
        "routing": {"default": ["en1", "en2"], "panel": 2,
                    "rules": [{"name": "french", "when": {"language": "fr"}, "voices": ["fr"]}]},
    }  # fmt: skip
    with pytest.raises(ConfigError) as info:
        AiOrchestration(cfg, voices=voices([]))
    assert info.value.field == "routing.rules[0].panel"
    assert "rule 'french'" in str(info.value) and "min_votes = 2" in str(info.value)
    cfg["routing"]["rules"][0]["voices"] = ["fr", "en3"]
    cfg["routing"]["rules"][0]["panel"] = 2
    AiOrchestration(cfg, voices=voices([])).close()  # both panels now give two votes
