from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration.errors import ConfigError
from ai_orchestration.policies import CircuitRegistry, CircuitSettings, FakeClock
from ai_orchestration.routing import RouteInput, Router, ab_bucket, detect_language
from ai_orchestration.stats import StatsRegistry
from ai_orchestration.voices import VoiceRequest

VOICES = ("gpt", "claude", "local", "mistral")
CONFIG: dict[str, Any] = {
    "default": ["local"],
    "voices": {
        "gpt": {"cost": 2.0, "quality": 0.9, "circuit_key": "openai:gpt"},
        "claude": {"cost": 3.0, "quality": 0.95},
        "local": {"cost": 0.0, "quality": 0.5},
        "mistral": {"cost": 1.0, "quality": 0.8},
    },
    "rules": [
        {"name": "bulk", "priority": 1, "when": {"tags_any": ["bulk"]},
         "voices": ["gpt", "claude", "mistral", "local"], "strategy": "cheapest",
         "min_quality": 0.7},
        {"name": "legal-fr", "priority": 10,
         "when": {"language": "fr", "tags_any": ["legal"], "min_length": 10},
         "voices": ["claude", "gpt"]},
        {"name": "exp", "priority": 5, "when": {"fields": {"task": "summarise"}},
         "ab": {"key": "user_id", "split": {"gpt": 50, "claude": 50}}},
        {"name": "rr", "when": {"metadata": {"tier": ["free", "trial"]}},
         "voices": ["local", "mistral"], "strategy": "round_robin"},
    ],
}  # fmt: skip


def router(**kw: Any) -> Router:
    kw.setdefault("circuit_registry", CircuitRegistry())
    return Router.from_mapping(CONFIG, voices=VOICES, **kw)


def open_circuit(reg: CircuitRegistry, key: str) -> None:
    cb = reg.get(key, CircuitSettings(min_calls=1, cooldown_s=60), FakeClock())
    cb.on_failure(cb.acquire())


def test_language_detection() -> None:
    assert detect_language("What is the capital of France?") == "en"
    assert detect_language("Quelle est la capitale de la France ?") == "fr"
    assert detect_language("Wie ist das Wetter und die Lage?") == "de"
    assert detect_language("東京は日本の首都です") == "ja"
    assert detect_language("12345") is None


def test_priority_and_conditions() -> None:
    r = router()
    legal = {"text": "Quelle est la loi sur le bail ?", "tags": ["legal"]}
    d = r.select(legal)
    assert (d.voice, d.rule, d.fallbacks) == ("claude", "legal-fr", ("gpt",))
    assert r.select("hello there").rule is None  # nothing matches → default
    assert r.select("hello there").voice == "local"


def test_cheapest_meeting_quality_bar() -> None:
    d = router().select({"text": "x", "tags": "bulk"})
    assert d.voice == "mistral"  # cheapest with quality >= 0.7
    assert d.fallbacks == ("gpt", "claude")


def test_ab_buckets_are_deterministic_by_key() -> None:
    r = router()
    picks = {u: r.select({"task": "summarise", "user_id": u}).voice for u in map(str, range(200))}
    again = {u: r.select({"task": "summarise", "user_id": u}).voice for u in map(str, range(200))}
    assert picks == again
    share = sum(v == "gpt" for v in picks.values()) / len(picks)
    assert 0.4 < share < 0.6
    assert ab_bucket("exp", "", "42") == ab_bucket("exp", "", "42")
    assert picks["7"] == ("gpt" if ab_bucket("exp", "", "7") < 50 else "claude")


def test_round_robin_and_weighted() -> None:
    r = router()
    free = {"text": "hi", "metadata": {"tier": "free"}}
    assert [r.select(free).voice for _ in range(4)] == ["local", "mistral", "local", "mistral"]
    weighted = Router.from_mapping(
        {"rules": [{"name": "w", "voices": ["a", "b"], "strategy": "weighted",
                    "weights": {"a": 3, "b": 1}}]}
    )  # fmt: skip
    assert [weighted.select("x").voice for _ in range(4)] == ["a", "a", "b", "a"]


def test_least_latency_uses_live_stats() -> None:
    stats = StatsRegistry()
    for _ in range(5):
        stats.record("a", 0.30)
        stats.record("b", 0.10)
    r = Router.from_mapping(
        {"rules": [{"name": "fast", "voices": ["a", "b"], "strategy": "least_latency"}]},
        stats=stats,
    )
    assert r.select("x").voice == "b"


def test_health_gate_skips_open_circuits_without_calling_anyone() -> None:
    reg = CircuitRegistry()
    r = router(circuit_registry=reg)
    legal = {"text": "Quelle est la loi sur le bail ?", "tags": ["legal"]}
    open_circuit(reg, "claude")
    d = r.select(legal)
    assert (d.voice, d.rule, d.fallbacks) == ("gpt", "legal-fr", ())
    assert d.skipped == ("'claude' skipped: circuit 'claude' is open",)
    open_circuit(reg, "openai:gpt")  # gpt's circuit key from its profile
    d = r.select(legal)
    assert (d.voice, d.rule, d.healthy) == ("local", None, True)
    open_circuit(reg, "local")
    d = r.select(legal)
    assert (d.voice, d.healthy) == ("claude", False)


def test_explain_names_the_rule_and_why_without_advancing() -> None:
    r = router()
    free = {"text": "hi", "metadata": {"tier": "free"}}
    text = r.explain(free)
    assert "rule 'legal-fr' (priority 10): no match: length 2 < min_length 10" in text
    assert "rule 'bulk' (priority 1): no match: none of tags ['bulk'] in []" in text
    assert "rule 'rr' (priority 0): match; round robin turn 0" in text
    assert text.endswith("=> voice 'local' (rule 'rr'; fallbacks: ['mistral'])")
    assert r.select(free).voice == "local"  # explain did not advance the rotation


def test_route_input_from_request_and_mapping() -> None:
    req = VoiceRequest.from_prompt("hello world", metadata={"tags": ["x"], "tier": "free"})
    ri = RouteInput.of(req)
    assert (ri.text, ri.tags, ri.language) == ("hello world", frozenset({"x"}), None)
    assert RouteInput.of({"prompt": "the cat", "language": "en"}).language == "en"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"voices": ["gpt", "nobody"]}, "routing.rules[0].voices[1]", "unknown voice 'nobody'"),
        ({"when": {"min_length": 10, "max_length": 5}}, "routing.rules[0].when.min_length",
         "can never match"),
        ({"when": {"language": []}}, "routing.rules[0].when.language", "can never match"),
        ({"strategy": "weighted", "weights": {"gpt": -1}}, "routing.rules[0]", "weights"),
        ({"strategy": "weighted", "weights": {"gpt": 0}}, "routing.rules[0]", "positive sum"),
        ({"weights": {"gpt": 1}}, "routing.rules[0]", "strategy is not 'weighted'"),
        ({"voices": [], "ab": {"split": {"gpt": 60, "claude": 50}}},
         "routing.rules[0].ab.split", "sum to 100"),
        ({"when": {"pattern": "("}}, "routing.rules[0].when.pattern", "regular expression"),
        ({"strategy": "cheapest", "min_quality": 0.99}, "routing.rules[0].min_quality",
         "can never select"),
        ({"when": {"lenght": 3}}, "routing.rules[0].when.lenght", "Extra inputs"),
    ],
)  # fmt: skip
def test_bad_rules_name_rule_and_field(change: dict[str, Any], field: str, words: str) -> None:
    rule = {"name": "r0", "voices": ["gpt"], **change}
    with pytest.raises(ConfigError) as info:
        Router.from_mapping({"rules": [rule], "voices": {"gpt": {"quality": 0.9}}}, voices=VOICES)
    assert info.value.field == field
    assert words in str(info.value) and "'r0'" in str(info.value)


def test_rule_shadowed_by_a_catch_all_can_never_match() -> None:
    rules = [
        {"name": "all", "priority": 5, "voices": ["gpt"]},
        {"name": "later", "when": {"tags_any": ["x"]}, "voices": ["claude"]},
    ]
    with pytest.raises(ConfigError, match="rule 'later' can never match") as info:
        Router.from_mapping({"rules": rules}, voices=VOICES)
    assert info.value.field == "routing.rules[1]"
    with pytest.raises(ConfigError, match="default"):
        Router.from_mapping({"default": ["ghost"]}, voices=VOICES)


def test_hot_reload_keeps_last_good_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("routing:\n  rules:\n    - {name: a, voices: [gpt]}\n")
    clock = FakeClock()
    r = Router.from_file(path, voices=VOICES, clock=clock, check_interval=1.0)
    assert r.select("x").voice == "gpt"

    def rewrite(text: str) -> None:
        path.write_text(text)
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        clock.advance(1.0)

    rewrite("routing:\n  rules:\n    - {name: a, voices: [claude]}\n")
    assert r.select("x").voice == "claude"
    with caplog.at_level(logging.WARNING, logger="ai_orchestration.routing"):
        rewrite("routing:\n  rules:\n    - {name: a, voices: [nobody]}\n")
        assert r.select("x").voice == "claude"  # last good config kept
    assert "unknown voice 'nobody'" in caplog.text
    assert r.last_error is not None and "routing.rules[0].voices[0]" in r.last_error


def test_yaml_file_errors_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "routing:\n  rules:\n    - name: a\n      voices: [gpt]\n      priority: high\n"
    )
    with pytest.raises(ConfigError) as info:
        Router.from_file(path)
    assert info.value.line == 5 and info.value.field == "routing.rules[0].priority"
    assert "rule 'a'" in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("app.yaml", "routing:\n  rules:\n    - {name: a, voices: [gpt]\n  default: [gpt]\n", 4),
        ("app.toml", '[routing]\nrules = [,]\ndefault = ["gpt"]\n', 2),
        ("app.json", '{"routing": {\n  "default": ["gpt"],\n}}\n', 3),
    ],
)
def test_file_parse_errors_carry_file_and_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Router.from_file(path)
    assert (info.value.file, info.value.line) == (str(path), line)


def test_an_edit_made_while_the_file_is_read_is_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_orchestration import routing

    path = tmp_path / "app.yaml"
    path.write_text("routing:\n  rules:\n    - {name: a, voices: [gpt]}\n")
    load = routing._load_file

    def load_then_edit(p: Path, voices: Any) -> Any:
        config = load(p, voices)
        p.write_text("routing:\n  rules:\n    - {name: a, voices: [claude]}\n")
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return config

    monkeypatch.setattr(routing, "_load_file", load_then_edit)
    clock = FakeClock()
    r = Router.from_file(path, voices=VOICES, clock=clock, check_interval=1.0)
    monkeypatch.setattr(routing, "_load_file", load)
    assert r.select("x").voice == "gpt"
    clock.advance(1.0)
    assert r.select("x").voice == "claude"


def test_a_panel_is_the_first_healthy_voices_and_the_rest_are_fallbacks() -> None:
    reg = CircuitRegistry()
    cfg = {
        "panel": 2,
        "default": ["local", "mistral", "gpt"],
        "rules": [{"name": "trio", "when": {"tags_any": ["hard"]}, "panel": 3,
                   "voices": ["gpt", "claude", "mistral", "local"]}],
    }  # fmt: skip
    r = Router.from_mapping(cfg, voices=VOICES, circuit_registry=reg)
    d = r.select({"text": "x", "tags": ["hard"]})
    assert (d.panel, d.fallbacks, d.voice) == (("gpt", "claude", "mistral"), ("local",), "gpt")
    open_circuit(reg, "claude")
    d = r.select({"text": "x", "tags": ["hard"]})
    assert (d.panel, d.fallbacks) == (("gpt", "mistral", "local"), ())
    d = r.select("plain")  # the config-wide panel applies to the default list
    assert (d.rule, d.panel, d.fallbacks) == (None, ("local", "mistral"), ("gpt",))
    assert "=> voices ['local', 'mistral']" in r.explain("plain")
    assert d.to_dict() == {
        "rule": None, "voices": ["local", "mistral"], "fallbacks": ["gpt"],
        "reason": "default", "skipped": [], "healthy": True,
    }  # fmt: skip


def test_a_panel_larger_than_the_rule_is_a_config_error() -> None:
    cfg = {"rules": [{"name": "duo", "voices": ["gpt", "claude"], "panel": 3}]}
    with pytest.raises(ConfigError) as info:
        Router.from_mapping(cfg, voices=VOICES)
    assert info.value.field == "routing.rules[0]" and "panel of 3" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Router.from_mapping({"panel": 0, "default": ["gpt"]}, voices=VOICES)
    assert info.value.field == "routing.panel"
