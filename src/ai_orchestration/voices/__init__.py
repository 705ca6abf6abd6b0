"""Voices: the one-method plug point and its request/response types."""

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
    "StreamingVoice",
    "ToolSpec",
    "Usage",
    "Voice",
    "VoiceDelta",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceSettings",
]
