"""Request and answer helpers shared by voices, HTTP or local; this module never imports httpx."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import orjson

from ai_orchestration.errors import BadRequestError, MalformedResponseError
from ai_orchestration.voices._types import ToolSpec, VoiceRequest, VoiceSettings

__all__ = [
    "check_structured",
    "choices_schema",
    "merge_settings",
    "parse_json_output",
    "pick_choice",
    "shorten",
    "softmax",
    "system_texts",
    "tool_parameters",
]

_MAX_MESSAGE = 300
_SPACE = re.compile(r"\s+")


def shorten(text: str) -> str:
    """``text`` with whitespace collapsed, cut to a length fit for an error message."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def softmax(scores: Sequence[float]) -> list[float]:
    """Probabilities proportional to ``exp(score)``, computed without overflow."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


# --- requests ------------------------------------------------------------------------------


def merge_settings(defaults: VoiceSettings, request: VoiceSettings) -> VoiceSettings:
    """Per-request settings win where set; the voice's defaults fill the rest."""
    if defaults == VoiceSettings():
        return request
    return VoiceSettings(
        temperature=request.temperature
        if request.temperature is not None
        else defaults.temperature,
        max_tokens=request.max_tokens if request.max_tokens is not None else defaults.max_tokens,
        seed=request.seed if request.seed is not None else defaults.seed,
        timeout=request.timeout if request.timeout is not None else defaults.timeout,
        stop=request.stop or defaults.stop,
    )


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


def choices_schema(choices: tuple[str, ...]) -> dict[str, Any]:
    """A JSON schema whose only valid values are ``{"answer": <one of choices>}``."""
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(choices)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


# --- answers -------------------------------------------------------------------------------


def parse_json_output(text: str, *, voice: str, what: str = "structured output") -> Any:
    """Decode a model's JSON answer; a model that ignored the schema is a malformed response."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MalformedResponseError(
            f"{what} is not valid JSON: {shorten(text[:200])!r}", voice=voice
        ) from None


def pick_choice(value: Any, text: str, choices: tuple[str, ...], *, voice: str) -> str:
    """The chosen option from a ``{"answer": ...}`` object, or from plain text as a fallback."""
    answer = value.get("answer") if isinstance(value, dict) else value
    if isinstance(answer, str) and answer in choices:
        return answer
    folded = {c.strip().casefold(): c for c in choices}
    for candidate in (answer, text):
        if isinstance(candidate, str) and candidate.strip().casefold() in folded:
            return folded[candidate.strip().casefold()]
    raise MalformedResponseError(
        f"answer {shorten(text[:120])!r} is not one of the choices {list(choices)}", voice=voice
    )
