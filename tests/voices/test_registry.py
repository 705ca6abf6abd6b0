"""``provider:model[@base_url]`` specs, the provider registry and the lazy exports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from _wire import Recorder, json_response

from ai_orchestration import voices
from ai_orchestration.errors import ConfigError, UnknownVoiceError
from ai_orchestration.voices import VoiceRequest, VoiceResponse, VoiceSettings, registry
from ai_orchestration.voices.anthropic import AnthropicVoice
from ai_orchestration.voices.gemini import GeminiVoice
from ai_orchestration.voices.openai_compat import OpenAICompatVoice
from ai_orchestration.voices.pricing import PriceTable
from ai_orchestration.voices.registry import (
    VoiceSpec,
    known_providers,
    parse_spec,
    register_provider,
    voice_from_spec,
)


@pytest.fixture(autouse=True)
def restore_providers() -> Iterator[None]:
    """Providers a test registers (or resolves) do not outlive it."""
    saved = dict(registry._PROVIDERS)
    yield
    registry._PROVIDERS.clear()
    registry._PROVIDERS.update(saved)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("openai:gpt-4o-mini", VoiceSpec("openai", "gpt-4o-mini")),
        ("ollama:llama3:8b", VoiceSpec("ollama", "llama3:8b")),
        (
            "openai-compat:gemma@http://127.0.0.1:8080/v1",
            VoiceSpec("openai-compat", "gemma", "http://127.0.0.1:8080/v1"),
        ),
        (
            "vllm:org/model@https://gpu.internal/v1",
            VoiceSpec("vllm", "org/model", "https://gpu.internal/v1"),
        ),
        ("Anthropic:claude-sonnet-4", VoiceSpec("anthropic", "claude-sonnet-4")),
        ("local:user@host-model", VoiceSpec("local", "user@host-model")),  # '@' without a URL
    ],
)
def test_parse_spec(spec: str, parsed: VoiceSpec) -> None:
    assert parse_spec(spec) == parsed
    assert str(parsed) == spec.replace("Anthropic", "anthropic")


@pytest.mark.parametrize("spec", ["gpt-4o-mini", "openai:", ":gpt", ""])
def test_malformed_spec(spec: str) -> None:
    with pytest.raises(UnknownVoiceError, match="provider:model") as info:
        parse_spec(spec)
    assert info.value.voice == spec


def test_unknown_provider_names_spec_and_known_providers() -> None:
    with pytest.raises(UnknownVoiceError) as info:
        voice_from_spec("mistral:large")
    msg = str(info.value)
    assert "'mistral'" in msg and "'mistral:large'" in msg
    for provider in ("anthropic", "gemini", "ollama", "openai", "openai-compat", "vllm"):
        assert provider in msg
    assert info.value.voice == "mistral:large"


def test_builtin_http_providers() -> None:
    cases: list[tuple[str, type, str, str]] = [
        ("openai:gpt-4o-mini", OpenAICompatVoice, "https://api.openai.com/v1", "openai"),
        ("ollama:llama3", OpenAICompatVoice, "http://127.0.0.1:11434/v1", "ollama"),
        ("vllm:m", OpenAICompatVoice, "http://127.0.0.1:8000/v1", "vllm"),
        ("lmstudio:m", OpenAICompatVoice, "http://127.0.0.1:1234/v1", "lmstudio"),
        ("llama-cpp:gemma", OpenAICompatVoice, "http://127.0.0.1:8080/v1", "llama-cpp"),
        (
            "openai-compat:gemma@http://127.0.0.1:9/v1",
            OpenAICompatVoice,
            "http://127.0.0.1:9/v1",
            "openai-compat",
        ),
    ]
    for spec, cls, url, provider in cases:
        v: Any = voice_from_spec(spec)
        assert type(v) is cls
        assert v.base_url == url
        assert v.options.provider == provider
        assert v.name == spec.split("@")[0]
    assert voice_from_spec("llama-cpp:gemma").options.structured_output == "json_object"  # type: ignore[attr-defined]
    assert type(voice_from_spec("anthropic:claude-sonnet-4")) is AnthropicVoice
    assert type(voice_from_spec("gemini:gemini-2.0-flash")) is GeminiVoice


def test_openai_compat_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="needs a base URL"):
        voice_from_spec("openai-compat:gemma")


def test_options_become_settings_wire_options_and_prices() -> None:
    v: Any = voice_from_spec(
        "ollama:llama3",
        name="judge",
        temperature=0.3,
        max_tokens=20,
        stop=["\n"],
        structured_output="json_object",
        prices={"ollama:llama3": (1.0, 2.0)},
        timeout=5.0,
    )
    assert v.name == "judge"
    assert v.settings == VoiceSettings(temperature=0.3, max_tokens=20, stop=("\n",))
    assert v.options.structured_output == "json_object"
    assert v.options.provider == "ollama"
    assert isinstance(v.prices, PriceTable)
    assert v.prices.quote("llama3", 1_000_000, 0, provider="ollama").cost_usd == 1.0
    assert v.prices.lookup("gpt-4o-mini") is not None  # defaults kept


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="colour"):
        voice_from_spec("openai:gpt-4o-mini", colour="blue")


def test_settings_and_fields_together_rejected() -> None:
    with pytest.raises(ConfigError, match="settings"):
        voice_from_spec("openai:gpt-4o-mini", settings=VoiceSettings(), temperature=0.1)


class _Echo:
    def __init__(self, model: str, name: str, greeting: str = "hi") -> None:
        self.model, self._name, self.greeting = model, name, greeting

    @property
    def name(self) -> str:
        return self._name

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        return VoiceResponse(text=f"{self.greeting} {request.prompt}", model=self.model)


def _echo_factory(model: str, *, base_url: str | None, **options: Any) -> _Echo:
    return _Echo(model, **options)


async def test_register_provider_callable() -> None:
    register_provider("echo-test", _echo_factory)
    v = voice_from_spec("echo-test:e1", greeting="hello")
    assert "echo-test" in known_providers()
    assert v.name == "echo-test:e1"
    assert (await v.respond(VoiceRequest.from_prompt("you"))).text == "hello you"


def test_register_provider_lazy_string() -> None:
    register_provider("echo-lazy", f"{__name__}:_echo_factory")
    assert voice_from_spec("echo-lazy:m").name == "echo-lazy:m"


@pytest.mark.parametrize("name", ["", "a:b", "a@b", "a b"])
def test_register_provider_rejects_bad_names(name: str) -> None:
    with pytest.raises(ConfigError):
        register_provider(name, _echo_factory)


def test_local_entries_are_lazy_and_pass_model_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls: list[dict[str, Any]] = []

    class FakeLlama:
        def __init__(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    fake = types.ModuleType("fake_local_mod")
    fake.LlamaCppVoice = FakeLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_orchestration.voices.local", fake)
    voice_from_spec("local:gemma", temperature=0.7)
    assert calls == [{"name": "local:gemma", "model_path": "gemma", "temperature": 0.7}]


def test_lazy_entry_with_missing_dependency() -> None:
    from ai_orchestration.voices.registry import _Lazy

    register_provider("needs-missing", _Lazy("no_such_module_xyz:Voice", "model"))
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        voice_from_spec("needs-missing:m")


async def test_spec_voice_talks_to_its_base_url() -> None:
    rec = Recorder(
        json_response(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "model": "gemma",
            }
        )
    )
    v = voice_from_spec("openai-compat:gemma@http://127.0.0.1:8080/v1", transport=rec.transport)
    assert (await v.respond(VoiceRequest.from_prompt("hi"))).text == "ok"
    assert str(rec.last.url) == "http://127.0.0.1:8080/v1/chat/completions"


def test_exports_resolve_and_stay_lazy() -> None:
    for name in voices.__all__:
        assert getattr(voices, name) is not None
    code = (
        "import sys, ai_orchestration, ai_orchestration.voices as v; "
        "assert 'httpx' not in sys.modules, 'httpx imported eagerly'; "
        "v.voice_from_spec; assert 'httpx' not in sys.modules; "
        "v.OpenAICompatVoice; assert 'httpx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
