"""Voices: the one-method plug point and its request/response types."""

from typing import TYPE_CHECKING, Any

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
    "Embedder",
    "EmbeddingVoice",
    "LlamaCppVoice",
    "PromptStyle",
    "StreamingVoice",
    "ToolSpec",
    "Usage",
    "Voice",
    "VoiceDelta",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceSettings",
    "default_voices",
]

# Local-model voices import their heavy dependencies on first use; the names load lazily.
_LAZY_LOCAL = {
    "Embedder": "ai_orchestration.voices.embedding",
    "EmbeddingVoice": "ai_orchestration.voices.embedding",
    "LlamaCppVoice": "ai_orchestration.voices.local",
    "PromptStyle": "ai_orchestration.voices.local",
    "default_voices": "ai_orchestration.voices.defaults",
}

if TYPE_CHECKING:
    from ai_orchestration.voices.defaults import default_voices
    from ai_orchestration.voices.embedding import Embedder, EmbeddingVoice
    from ai_orchestration.voices.local import LlamaCppVoice, PromptStyle


def __getattr__(name: str) -> Any:
    module = _LAZY_LOCAL.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
