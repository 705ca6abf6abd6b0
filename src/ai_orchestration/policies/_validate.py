"""Output validation (a JSON-schema subset or a custom validator) with a bounded re-ask."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ai_orchestration.context import Message
from ai_orchestration.errors import MalformedResponseError
from ai_orchestration.policies._wrap import PolicyVoice, VoiceCall, note
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse

__all__ = ["Validating", "ValidationPolicy", "check_schema", "parse_json"]

Validator = Callable[[VoiceResponse], str | None]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_json(text: str) -> Any:
    """Parse ``text`` as JSON, tolerating one Markdown code fence; raises ``ValueError``."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1)
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def check_schema(value: Any, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """The first violation of ``schema`` by ``value`` as ``"path: problem"``, or None.

    Supports type, enum, const, properties, required, additionalProperties (bool),
    items, minItems/maxItems, minLength/maxLength, pattern, minimum/maximum.

    >>> check_schema({"a": 1}, {"type": "object", "required": ["b"]})
    "$: missing required property 'b'"
    """
    problem = _check_scalar(value, schema, path)
    if problem is not None:
        return problem
    if isinstance(value, dict):
        return _check_object(value, schema, path)
    if isinstance(value, list):
        return _check_array(value, schema, path)
    return None


def _type_ok(value: Any, t: str | list[str]) -> bool:
    names = [t] if isinstance(t, str) else t
    for name in names:
        kinds = _TYPES.get(name, (object,))
        if isinstance(value, bool) and name in ("number", "integer"):
            continue
        if isinstance(value, kinds):
            return True
    return False


def _check_scalar(value: Any, schema: Mapping[str, Any], path: str) -> str | None:
    t = schema.get("type")
    if t is not None and not _type_ok(value, t):
        return f"{path}: expected {t}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {list(schema['enum'])!r}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']}"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{path}: does not match {schema['pattern']!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} > maximum {schema['maximum']}"
    return None


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> str | None:
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            return f"{path}: missing required property {name!r}"
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(props))
        if extra:
            return f"{path}: unexpected property {extra[0]!r}"
    for name, sub in props.items():
        if name in value:
            problem = check_schema(value[name], sub, f"{path}.{name}")
            if problem is not None:
                return problem
    return None


def _check_array(value: list[Any], schema: Mapping[str, Any], path: str) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return f"{path}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{path}: more than {schema['maxItems']} items"
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            problem = check_schema(item, items, f"{path}[{i}]")
            if problem is not None:
                return problem
    return None


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Check each answer and re-ask up to ``max_reasks`` times, telling the voice what was wrong.

    With ``schema`` (or, without one, the request's ``response_schema``) the text must be JSON
    matching it, and the response comes back with ``parsed`` set. ``validator`` gets the
    response and returns a problem description or None. Still invalid after the re-asks →
    ``MalformedResponseError``.
    """

    schema: Mapping[str, Any] | None = None
    validator: Validator | None = None
    max_reasks: int = 1

    def __post_init__(self) -> None:
        if self.max_reasks < 0:
            raise ValueError(f"max_reasks must be >= 0, got {self.max_reasks}")

    def check(self, request: VoiceRequest, response: VoiceResponse) -> tuple[str | None, Any]:
        """(problem or None, parsed value or None)."""
        parsed: Any = None
        schema = self.schema if self.schema is not None else request.response_schema
        if schema is not None:
            if response.parsed is not None:
                parsed = response.parsed
            else:
                try:
                    parsed = parse_json(response.text)
                except ValueError as exc:
                    return str(exc), None
            problem = check_schema(parsed, schema)
            if problem is not None:
                return problem, None
        if self.validator is not None:
            problem = self.validator(response)
            if problem is not None:
                return problem, None
        return None, parsed

    def wrap(self, voice: Voice) -> Voice:
        return PolicyVoice(voice, Validating(self, voice.name))


def _reask(request: VoiceRequest, bad: str, problem: str) -> VoiceRequest:
    msgs = (
        Message("assistant", bad),
        Message("user", f"That answer was invalid ({problem}). Answer again, correctly."),
    )
    return dataclasses.replace(request, messages=(*request.messages, *msgs))


@dataclass(frozen=True, slots=True)
class Validating:
    """``ValidationPolicy`` as voice middleware (``voice`` names it in the error)."""

    policy: ValidationPolicy
    voice: str

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        asked = request
        problems: list[str] = []
        for _ in range(self.policy.max_reasks + 1):
            response = await call_next(asked)
            problem, parsed = self.policy.check(request, response)
            if problem is None:
                if problems:
                    note("validation_reasks", problems)
                if parsed is not None and response.parsed is None:
                    response = dataclasses.replace(response, parsed=parsed)
                return response
            problems.append(problem)
            asked = _reask(asked, response.text[:2000], problem)
        note("validation_reasks", problems)
        raise MalformedResponseError(
            f"invalid output after {len(problems)} attempt(s): {problems[-1]}", voice=self.voice
        )
