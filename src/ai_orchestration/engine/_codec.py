"""The one output codec: step outputs, votes, consensus, contexts, messages, voice responses
and routing outcomes to bytes (orjson) and back, equal to what went in.

JSON values pass through as they are. Everything JSON cannot say exactly is tagged as
``{"$t": name, "v": payload}``: tuples, sets, bytes, non-finite floats, integers beyond 64
bits, mappings whose keys are not all strings (or that contain ``"$t"``), and registered types
(the library's own and any a user adds with :func:`register_type`). A value that cannot be
encoded raises :class:`~ai_orchestration.errors.SerializationError` naming where it sits:
``steps.draft.output.items[3]``.

>>> from ai_orchestration.consensus import Vote
>>> decode(encode({"votes": (Vote("a", "Paris", 0.9),)})) == {"votes": (Vote("a", "Paris", 0.9),)}
True
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ai_orchestration.errors import SerializationError

__all__ = ["decode", "encode", "from_data", "register_type", "to_data"]

TAG = "$t"
Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

# The library's own types, imported on first use (the codec must not import the engine).
_BUILTIN: dict[str, str] = {
    "message": "ai_orchestration.context:Message",
    "tool_call": "ai_orchestration.context:ToolCall",
    "vote": "ai_orchestration.consensus._types:Vote",
    "consensus": "ai_orchestration.consensus._types:Consensus",
    "usage": "ai_orchestration.voices._types:Usage",
    "voice_response": "ai_orchestration.voices._types:VoiceResponse",
    "route_decision": "ai_orchestration.routing:RouteDecision",
    "route_outcome": "ai_orchestration._steps:RouteOutcome",
    "team_result": "ai_orchestration.agents:TeamResult",
}
_by_type: dict[type, tuple[str, Encoder]] = {}
_by_name: dict[str, Decoder] = {}
_loaded = False


def register_type(
    cls: type,
    *,
    name: str | None = None,
    encode: Encoder | None = None,
    decode: Decoder | None = None,
) -> None:
    """Teach the codec a type. A dataclass needs nothing else: its fields are encoded (by
    this codec, recursively) and passed back to its constructor. Any other type gives
    ``encode`` (value → codec-encodable data) and ``decode`` (that data → value).
    ``name`` (default ``module.QualName``) is what the encoded form records; keep it stable.
    """
    tag = name or f"{cls.__module__}.{cls.__qualname__}"
    if encode is None or decode is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"register_type({cls.__qualname__}): not a dataclass; give encode=")
        encode = encode or _dataclass_fields
        decode = decode or _dataclass_builder(cls)
    known = _by_name.get(tag)
    if known is not None and _by_type.get(cls, ("",))[0] != tag:
        raise ValueError(f"codec type name {tag!r} is already registered for another type")
    _by_type[cls] = (tag, encode)
    _by_name[tag] = decode


def encode(value: Any, *, path: str = "value") -> bytes:
    """``value`` as bytes; :class:`SerializationError` names ``path`` + where inside it fails."""
    return orjson.dumps(to_data(value, path=path))


def decode(data: bytes | str) -> Any:
    """The value :func:`encode` was given."""
    try:
        return from_data(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"not an encoded value: {exc}") from exc


def to_data(value: Any, *, path: str = "value") -> Any:
    """``value`` as plain JSON data (what :func:`encode` writes), for embedding in records."""
    _load_builtins()
    return _to(value, path)


def from_data(data: Any) -> Any:
    """The inverse of :func:`to_data`."""
    _load_builtins()
    return _from(data)


def _to(value: Any, path: str) -> Any:
    if value is None or value is True or value is False or type(value) is str:
        return value
    kind = type(value)
    if isinstance(value, int) and kind not in _by_type:  # bool was handled above
        value = int(value)
        return value if -(2**63) <= value < 2**64 else {TAG: "int", "v": str(value)}
    if isinstance(value, float):  # numpy's float64 too
        return float(value) if math.isfinite(value) else {TAG: "float", "v": repr(value)}
    if isinstance(value, str) and kind not in _by_type:  # str subclasses (StrEnum) as text
        return str(value)
    if kind is list:
        return [_to(x, f"{path}[{i}]") for i, x in enumerate(value)]
    if kind is tuple:
        return {TAG: "tuple", "v": [_to(x, f"{path}[{i}]") for i, x in enumerate(value)]}
    if kind is dict or (isinstance(value, Mapping) and kind not in _by_type):
        return _mapping(value, path)
    registered = _by_type.get(kind)
    if registered is not None:
        tag, enc = registered
        return {TAG: tag, "v": _to(enc(value), path)}
    if kind in (set, frozenset):
        items = sorted((_to(x, f"{path}{{}}") for x in value), key=orjson.dumps)
        return {TAG: kind.__name__, "v": items}
    if kind is bytes:
        return {TAG: "bytes", "v": base64.b64encode(value).decode()}
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars
        return _to(value.item(), path)
    raise SerializationError(
        f"{path}: cannot encode a {kind.__qualname__} (register it with "
        "ai_orchestration.engine.register_type)",
        path=path,
    )


def _mapping(value: Mapping[Any, Any], path: str) -> Any:
    if all(type(k) is str for k in value) and TAG not in value:
        return {k: _to(v, f"{path}.{k}") for k, v in value.items()}
    pairs = [[_to(k, f"{path}<key>"), _to(v, f"{path}[{k!r}]")] for k, v in value.items()]
    return {TAG: "dict", "v": pairs}


def _from(data: Any) -> Any:
    if type(data) is list:
        return [_from(x) for x in data]
    if type(data) is not dict:
        return data
    tag = data.get(TAG)
    if tag is None:
        return {k: _from(v) for k, v in data.items()}
    payload: Any = data.get("v")
    match tag:
        case "tuple":
            return tuple(_from(x) for x in payload)
        case "dict":
            return {_from(k): _from(v) for k, v in payload}
        case "set":
            return {_from(x) for x in payload}
        case "frozenset":
            return frozenset(_from(x) for x in payload)
        case "bytes":
            return base64.b64decode(payload)
        case "float":
            return float(payload)
        case "int":
            return int(payload)
    decoder = _by_name.get(tag)
    if decoder is None:
        raise SerializationError(f"unknown encoded type {tag!r} (not registered here)", path=tag)
    return decoder(_from(payload))


def _dataclass_fields(value: Any) -> dict[str, Any]:
    """Constructor fields; an optional field left out of equality (a raw provider payload)
    is not part of the value and is not kept."""
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if _kept(f)}


def _kept(f: dataclasses.Field[Any]) -> bool:
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return f.init and (f.compare or required)


def _dataclass_builder(cls: type) -> Decoder:
    def build(fields: dict[str, Any]) -> Any:
        return cls(**fields)

    return build


def _context_data(ctx: Any) -> dict[str, Any]:
    return {"messages": ctx.messages, "artifacts": ctx.artifacts, "metadata": ctx.metadata}


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for tag, where in _BUILTIN.items():
        module, _, name = where.partition(":")
        register_type(getattr(importlib.import_module(module), name), name=tag)
    from ai_orchestration.context import Context

    register_type(
        Context,
        name="context",
        encode=_context_data,
        decode=lambda d: Context(d["messages"], artifacts=d["artifacts"], metadata=d["metadata"]),
    )
    _loaded = True
