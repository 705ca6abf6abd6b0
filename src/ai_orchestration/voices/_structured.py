"""Request and answer helpers shared by voices that need no HTTP (and so no httpx)."""

from __future__ import annotations

from typing import Any

from ai_orchestration.errors import BadRequestError
from ai_orchestration.voices._types import ToolSpec, VoiceRequest

__all__ = ["check_structured", "system_texts", "tool_parameters"]


def check_structured(request: VoiceRequest, *, voice: str) -> None:
    """Refuse a request with both ``choices`` and ``response_schema``, or empty ``choices``."""
    if request.choices is not None and request.response_schema is not None:
        raise BadRequestError(
            "a request takes either choices or response_schema, not both", voice=voice
        )
    if request.choices is not None and not request.choices:
        raise BadRequestError("choices is empty", voice=voice)


def system_texts(request: VoiceRequest) -> list[str]:
    """The request's instructions, then its system messages, in order."""
    system = [m.content for m in request.messages if m.role == "system"]
    if request.instructions:
        system.insert(0, request.instructions)
    return system


def tool_parameters(tool: ToolSpec) -> dict[str, Any]:
    """A tool's JSON-schema parameters; an empty object schema when it takes none."""
    return dict(tool.parameters) or {"type": "object", "properties": {}}
