"""Voices addressed by ``provider:model[@base_url]`` strings, and the provider registry.

>>> voice_from_spec("ollama:llama3:8b").base_url
'http://127.0.0.1:11434/v1'
>>> voice_from_spec("openai-compat:gemma@http://127.0.0.1:8080/v1", name="g").name
'g'
>>> parse_spec("openai:gpt-4o-mini")
VoiceSpec(provider='openai', model='gpt-4o-mini', base_url=None)

The provider is everything before the first ``:``; the model is the rest, up to an ``@`` that
starts an ``http://`` or ``https://`` base URL (so Ollama tags such as ``llama3:8b`` work).
Keyword options go to the voice's constructor; for the HTTP voices, ``temperature``,
``max_tokens``, ``seed``, ``stop`` become its default ``VoiceSettings`` and a ``prices``
mapping extends the price table. Local providers are imported only when first used.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from ai_orchestration._secret import Secret, scrub_urls
from ai_orchestration.errors import ConfigError, UnknownVoiceError
from ai_orchestration.voices._types import Voice, VoiceSettings

__all__ = [
    "ProviderFactory",
    "VoiceSpec",
    "known_providers",
    "parse_spec",
    "register_provider",
    "voice_from_spec",
]

ProviderFactory = Callable[..., Voice]
"""Called as ``factory(model, base_url=<str | None>, name=<str>, **options)``."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_URL_AT = re.compile(r"@(?=https?://)")


@dataclass(frozen=True, slots=True)
class VoiceSpec:
    """A parsed ``provider:model[@base_url]`` string."""

    provider: str
    model: str
    base_url: str | None = None

    def __str__(self) -> str:
        tail = f"@{self.base_url}" if self.base_url else ""
        return scrub_urls(f"{self.provider}:{self.model}{tail}")

    def __repr__(self) -> str:
        url = scrub_urls(self.base_url) if self.base_url else None
        return f"VoiceSpec(provider={self.provider!r}, model={self.model!r}, base_url={url!r})"


def parse_spec(spec: str) -> VoiceSpec:
    """Split a spec string; raises ``UnknownVoiceError`` when it is not ``provider:model``."""
    provider, sep, rest = spec.strip().partition(":")
    parts = _URL_AT.split(rest, maxsplit=1)
    model = parts[0].strip()
    if not sep or not provider or not model:
        raise UnknownVoiceError(
            f"voice spec {scrub_urls(spec)!r} is not 'provider:model[@base_url]' "
            f"(known providers: {', '.join(known_providers())})",
            voice=scrub_urls(spec),
        )
    return VoiceSpec(provider.strip().lower(), model, parts[1].strip() if len(parts) > 1 else None)


# --- built-in factories (adapters are imported when first used: httpx is not cheap) ---------

# ``timeout`` stays a constructor argument: it is the voice's own HTTP timeout.
_SETTINGS = frozenset(f.name for f in fields(VoiceSettings)) - {"timeout"}


def _http_common(options: dict[str, Any]) -> dict[str, Any]:
    from ai_orchestration.voices.pricing import DEFAULT_TABLE, PriceTable

    given = {k: options.pop(k) for k in list(options) if k in _SETTINGS}
    if given and "settings" in options:
        raise ConfigError("give either settings or its fields, not both", field=sorted(given)[0])
    if given:
        if isinstance(given.get("stop"), list | str):
            stop = given["stop"]
            given["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        options["settings"] = VoiceSettings(**given)
    prices = options.get("prices")
    if isinstance(prices, Mapping):
        options["prices"] = DEFAULT_TABLE.merged(prices)
    elif prices is not None and not isinstance(prices, PriceTable):
        raise ConfigError("prices must be a mapping or a PriceTable", field="prices")
    return options


def _openai_like(provider: str, default_url: str | None, **wire: Any) -> Callable[..., Voice]:
    def factory(model: str, *, base_url: str | None, **options: Any) -> Voice:
        from ai_orchestration.voices.openai_compat import (
            OPENAI_BASE_URL,
            OpenAICompatOptions,
            OpenAICompatVoice,
        )

        url = base_url or default_url or (OPENAI_BASE_URL if provider == "openai" else None)
        if url is None:
            raise ConfigError(
                f"provider {provider!r} needs a base URL: '{provider}:{model}@http://host:port/v1'",
                field="base_url",
            )
        options = _http_common(options)
        if "options" not in options:
            names = {f.name for f in fields(OpenAICompatOptions)}
            given = {k: options.pop(k) for k in list(options) if k in names}
            options["options"] = OpenAICompatOptions(**{"provider": provider, **wire, **given})
        return OpenAICompatVoice(model, base_url=url, **options)

    return factory


def _anthropic(model: str, *, base_url: str | None, **options: Any) -> Voice:
    from ai_orchestration.voices.anthropic import ANTHROPIC_BASE_URL, AnthropicVoice

    return AnthropicVoice(model, base_url=base_url or ANTHROPIC_BASE_URL, **_http_common(options))


def _gemini(model: str, *, base_url: str | None, **options: Any) -> Voice:
    from ai_orchestration.voices.gemini import GEMINI_BASE_URL, GeminiVoice

    return GeminiVoice(model, base_url=base_url or GEMINI_BASE_URL, **_http_common(options))


@dataclass(frozen=True, slots=True)
class _Lazy:
    """A provider whose voice class is imported only when a spec uses it."""

    target: str  # "package.module:Attribute"
    model_param: str  # the constructor keyword that receives the spec's model

    def __call__(self, model: str, *, base_url: str | None, **options: Any) -> Voice:
        if base_url is not None:
            raise ConfigError(f"{self.target} takes no base URL", field="base_url")
        module, _, attr = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"{self.target} needs an optional dependency that is not installed ({exc.name}); "
                "install the 'local' extra"
            ) from None
        options.setdefault(self.model_param, model)
        voice: Voice = cls(**options)
        return voice


_PROVIDERS: dict[str, ProviderFactory | str] = {
    "openai": _openai_like("openai", None),  # OPENAI_BASE_URL, imported with the adapter
    "openai-compat": _openai_like("openai-compat", None),
    "llama-cpp": _openai_like(
        "llama-cpp", "http://127.0.0.1:8080/v1", structured_output="json_object"
    ),
    "ollama": _openai_like("ollama", "http://127.0.0.1:11434/v1"),
    "vllm": _openai_like("vllm", "http://127.0.0.1:8000/v1"),
    "lmstudio": _openai_like("lmstudio", "http://127.0.0.1:1234/v1"),
    "anthropic": _anthropic,
    "gemini": _gemini,
    "local": _Lazy("ai_orchestration.voices.local:LlamaCppVoice", "model_path"),
    "embedding": _Lazy("ai_orchestration.voices.embedding:EmbeddingVoice", "model"),
}


def register_provider(name: str, factory: ProviderFactory | str) -> None:
    """Add (or replace) a provider. ``factory`` is a callable or a lazy ``"module:attr"``
    string naming one; it is called as ``factory(model, base_url=..., name=..., **options)``.

    >>> register_provider("echo", lambda model, *, base_url, name, **o: None)
    >>> "echo" in known_providers()
    True
    """
    if not _NAME.match(name):
        raise ConfigError(f"provider name {name!r} may use letters, digits, '_', '.', '-' only")
    if isinstance(factory, str) and ":" not in factory:
        raise ConfigError(f"lazy provider {factory!r} must be 'module:attribute'")
    _PROVIDERS[name.lower()] = factory


def known_providers() -> list[str]:
    return sorted(_PROVIDERS)


def _resolve(provider: str, spec: str) -> ProviderFactory:
    factory = _PROVIDERS.get(provider)
    if factory is None:
        raise UnknownVoiceError(
            f"unknown voice provider {provider!r} in {scrub_urls(spec)!r}; "
            f"known providers: {', '.join(known_providers())}",
            voice=scrub_urls(spec),
        )
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        assert callable(factory)
        _PROVIDERS[provider] = factory
    return factory


def voice_from_spec(spec: str, **options: Any) -> Voice:
    """Build a voice from ``provider:model[@base_url]``; ``options`` go to its constructor.

    The voice is named after the spec without its base URL unless ``name=`` is given.
    Unknown providers raise ``UnknownVoiceError``; unusable options (unknown to a built-in
    provider, of the wrong type, refused by the constructor) raise ``ConfigError`` naming the
    option as ``options.NAME``.
    """
    parsed = parse_spec(spec)
    factory = _resolve(parsed.provider, spec)
    _check_options(parsed.provider, factory, options)
    options.setdefault("name", f"{parsed.provider}:{parsed.model}")
    try:
        return factory(parsed.model, base_url=parsed.base_url, **options)
    except (TypeError, ValueError) as exc:
        m = _UNEXPECTED.search(str(exc))
        field = f"options.{m[1]}" if m else None
        raise ConfigError(f"voice {scrub_urls(spec)!r}: {exc}", field=field) from None


# --- options of the built-in providers, checked before a voice is built --------------------

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_SETTINGS_CLASS = "ai_orchestration.voices._types:VoiceSettings"
_OPENAI_CLASSES = (
    "ai_orchestration.voices.openai_compat:OpenAICompatVoice",
    "ai_orchestration.voices.openai_compat:OpenAICompatOptions",
    _SETTINGS_CLASS,
)
# Given by the spec or by us, not as options.
_NOT_OPTIONS = frozenset({"self", "model", "model_path", "base_url", "name"})


def _option_sources(factory: ProviderFactory) -> tuple[str, ...] | None:
    """The classes whose fields a built-in provider's options fill; None for others."""
    if isinstance(factory, _Lazy):
        return (factory.target,)
    if factory is _anthropic:
        return ("ai_orchestration.voices.anthropic:AnthropicVoice", _SETTINGS_CLASS)
    if factory is _gemini:
        return ("ai_orchestration.voices.gemini:GeminiVoice", _SETTINGS_CLASS)
    if getattr(factory, "__qualname__", "").startswith("_openai_like."):
        return _OPENAI_CLASSES
    return None


def _option_hints(sources: tuple[str, ...]) -> dict[str, Any] | None:
    """Option name → annotation for a built-in provider; None when any option name goes
    (a ``**kwargs`` constructor) or a class cannot be imported (the factory says why)."""
    hints: dict[str, Any] = {}
    for source in sources:
        module, _, attr = source.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None
        if is_dataclass(cls):
            target: Any = cls
            names = [f.name for f in fields(cls)]
        else:
            target = cls.__init__
            params = inspect.signature(target).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in params):
                return None
            names = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        try:
            types_of = typing.get_type_hints(target)
        except Exception:  # an annotation we cannot resolve: check names only
            types_of = {}
        for name in names:
            if name not in _NOT_OPTIONS:
                hints.setdefault(name, types_of.get(name, Any))
    return hints


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits a scalar annotation; None when the hint is not a scalar one."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        verdicts = [_accepts(arg, value) for arg in typing.get_args(hint)]
        return True if True in verdicts else (False if all(v is False for v in verdicts) else None)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        numeric = (int,) if hint is int else (int, float)
        return isinstance(value, numeric) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Secret:
        return isinstance(value, Secret)
    return None  # containers and objects: their constructors say what is wrong


_TYPE_WORDS = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
               str: "a string", Secret: "a secret string"}  # fmt: skip


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        words = dict.fromkeys(_describe(a) for a in typing.get_args(hint))
        return " or ".join(w for w in words if w != "a secret string" or len(words) == 1)
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return _TYPE_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _check_options(provider: str, factory: ProviderFactory, options: Mapping[str, Any]) -> None:
    sources = _option_sources(factory)
    hints = _option_hints(sources) if sources is not None else None
    if hints is None:
        return
    for name, value in options.items():
        if name == "name":
            continue
        if name not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(
                f"unknown option {name!r} for provider {provider!r} (options: {known})",
                field=f"options.{name}",
            )
        if _accepts(hints[name], value) is False:
            raise ConfigError(
                f"must be {_describe(hints[name])}, not {type(value).__name__}",
                field=f"options.{name}",
            )
