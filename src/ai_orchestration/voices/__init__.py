"""Voices: the one-method plug point and its request/response types."""

from typing import TYPE_CHECKING

from ai_orchestration._lazy import lazy_exports
from ai_orchestration.voices._identity import VoiceIdentity, identity_of
from ai_orchestration.voices._types import (
    StreamingVoice,
    ToolSpec,
    Usage,
    Voice,
    VoiceDelta,
    VoiceRequest,
    VoiceResponse,
    VoiceSettings,
)

__all__ = [
    "AnthropicVoice",
    "Embedder",
    "EmbeddingVoice",
    "GeminiVoice",
    "LlamaCppVoice",
    "OpenAICompatOptions",
    "OpenAICompatVoice",
    "Price",
    "PriceTable",
    "PromptStyle",
    "StreamingVoice",
    "ToolSpec",
    "Usage",
    "Voice",
    "VoiceDelta",
    "VoiceIdentity",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceSettings",
    "aclose_http_clients",
    "default_voices",
    "identity_of",
    "register_provider",
    "voice_from_spec",
]

_LAZY = {
    # Local-model voices import their heavy dependencies on first use.
    "Embedder": "ai_orchestration.voices.embedding",
    "EmbeddingVoice": "ai_orchestration.voices.embedding",
    "LlamaCppVoice": "ai_orchestration.voices.local",
    "PromptStyle": "ai_orchestration.voices.local",
    "default_voices": "ai_orchestration.voices.defaults",
    # Provider adapters import httpx (~100 ms); they load on first use as well.
    "AnthropicVoice": "ai_orchestration.voices.anthropic",
    "GeminiVoice": "ai_orchestration.voices.gemini",
    "OpenAICompatOptions": "ai_orchestration.voices.openai_compat",
    "OpenAICompatVoice": "ai_orchestration.voices.openai_compat",
    "Price": "ai_orchestration.voices.pricing",
    "PriceTable": "ai_orchestration.voices.pricing",
    "aclose_http_clients": "ai_orchestration.voices._http",
    "register_provider": "ai_orchestration.voices.registry",
    "voice_from_spec": "ai_orchestration.voices.registry",
}

if TYPE_CHECKING:
    from ai_orchestration.voices._http import aclose_http_clients
    from ai_orchestration.voices.anthropic import AnthropicVoice
    from ai_orchestration.voices.defaults import default_voices
    from ai_orchestration.voices.embedding import Embedder, EmbeddingVoice
    from ai_orchestration.voices.gemini import GeminiVoice
    from ai_orchestration.voices.local import LlamaCppVoice, PromptStyle
    from ai_orchestration.voices.openai_compat import OpenAICompatOptions, OpenAICompatVoice
    from ai_orchestration.voices.pricing import Price, PriceTable
    from ai_orchestration.voices.registry import register_provider, voice_from_spec


__getattr__ = lazy_exports(__name__, _LAZY)
