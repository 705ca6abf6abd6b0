from __future__ import annotations

import pytest

from ai_orchestration._runtime import Budget
from ai_orchestration.errors import ConfigError, ProviderUnavailableError
from ai_orchestration.policies import (
    FakeClock,
    FallbackResponse,
    PoliciesConfig,
    PolicyRegistries,
    build_voices,
)
from ai_orchestration.testing import ScriptedVoice
from ai_orchestration.voices import VoiceRequest

GOOD = {
    "defaults": {"timeout": 5, "deadline": 20, "retry": {"max_attempts": 2, "seed": 1}},
    "voices": {
        "gpt": {"provider": "openai", "fallbacks": ["local"], "circuit": {"min_calls": 3}},
        "local": {"retry": None},
    },
    "rate_limits": {"openai": {"requests_per_minute": 100}},
    "budget": {"max_calls": 10, "max_cost_usd": 0.5},
}


def error_field(data: object, voices: tuple[str, ...] | None = ("gpt", "local")) -> str | None:
    with pytest.raises(ConfigError) as info:
        PoliciesConfig.load(data, voices=voices)  # type: ignore[arg-type]
    return info.value.field


def test_valid_config_merges_defaults_per_voice() -> None:
    config = PoliciesConfig.load(GOOD, voices=["gpt", "local"])
    gpt, local = config.for_voice("gpt"), config.for_voice("local")
    assert (gpt.timeout, gpt.deadline, gpt.provider) == (5, 20, "openai")
    assert gpt.retry is not None and gpt.retry.max_attempts == 2
    assert local.retry is None  # explicitly switched off
    assert config.budget_limits() == Budget(max_calls=10, max_cost_usd=0.5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"defaults": {"timeout": -1}}, "policies.defaults.timeout"),
        ({"budget": {"max_calls": 0}}, "policies.budget.max_calls"),
        ({"budget": {"max_cost_usd": 0}}, "policies.budget.max_cost_usd"),
        (
            {"voices": {"gpt": {"retry": {"max_attempts": 0}}}},
            "policies.voices.gpt.retry.max_attempts",
        ),
        (
            {"rate_limits": {"x": {"requests_per_minute": -5}}},
            "policies.rate_limits.x.requests_per_minute",
        ),
        ({"defaults": {"timeout": 10, "deadline": 5}}, "policies.defaults"),
        ({"defaults": {"timeout": 1, "hedge": {"delay": 2}}}, "policies.defaults"),
        (
            {"defaults": {"circuit": {"failure_rate": 1.5}}},
            "policies.defaults.circuit.failure_rate",
        ),
        ({"defaults": {"bogus": 1}}, "policies.defaults.bogus"),
        ({"voices": {"gpt": {"fallbacks": ["local", "nope"]}}}, "policies.voices.gpt.fallbacks[1]"),
        ({"voices": {"gpt": {"fallbacks": ["gpt"]}}}, "policies.voices.gpt.fallbacks[0]"),
        ({"voices": {"ghost": {}}}, "policies.voices.ghost"),
    ],
)
def test_bad_config_names_the_field(data: object, field: str) -> None:
    assert error_field(data) == field


def test_yaml_source_gives_the_line() -> None:
    text = "policies:\n  defaults:\n    timeout: 5\n  budget:\n    max_tokens: 0\n"
    import yaml

    data = yaml.safe_load(text)["policies"]
    with pytest.raises(ConfigError) as info:
        PoliciesConfig.load(data, file="app.yaml", text=text)
    assert info.value.line == 5
    assert str(info.value).startswith("app.yaml:5: policies.budget.max_tokens:")


async def test_build_voices_applies_stacks_and_fallbacks() -> None:
    config = PoliciesConfig.load(GOOD, voices=["gpt", "local"])
    down = ProviderUnavailableError("503", voice="gpt")
    raw = {
        "gpt": ScriptedVoice("gpt", [down, down]),
        "local": ScriptedVoice("local", ["from local"]),
    }
    clock = FakeClock()
    built = build_voices(config, raw, clock=clock, registries=PolicyRegistries())
    assert sorted(built) == ["gpt", "local"] and built["gpt"].name == "gpt"
    out = await built["gpt"].respond(VoiceRequest.from_prompt("q"))
    assert isinstance(out, FallbackResponse) and out.answered_by == "local"
    raw["gpt"].assert_complete()  # two attempts (retry max_attempts=2) before falling back
    assert len(clock.sleeps) == 1


def test_errors_read_like_the_main_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        PoliciesConfig.load({"defaults": {"timeout": -1, "deadline": -1}})
    assert info.value.field == "policies.defaults.timeout"
    assert str(info.value) == (
        "policies.defaults.timeout: Input should be greater than 0 (and 1 more problem)"
    )
