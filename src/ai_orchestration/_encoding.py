"""Text that UTF-8 cannot hold (lone surrogates, e.g. from ``surrogateescape`` decoding).

Inputs are checked at the boundary (``unencodable``: an ``InputError`` names where); what
voices or steps produce is kept, escaped, wherever it is serialised (``encodable``), so one
run's odd text never fails a write that later runs depend on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

__all__ = ["encodable", "unencodable"]

_MAX_DEPTH = 32
_INT64, _UINT64 = -(2**63), 2**64


def _bad(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def unencodable(value: Any, where: str = "input") -> str | None:
    """Where in ``value`` (nested mappings and lists) a string UTF-8 cannot encode sits, as
    ``input['choices'][1]``; None when every string encodes."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _bad(item):
                return path
        elif depth < _MAX_DEPTH and isinstance(item, Mapping):
            for k, v in reversed(list(item.items())):
                if isinstance(k, str) and _bad(k):
                    return f"{path} (key {k.encode('utf-8', 'backslashreplace').decode()})"
                stack.append((v, f"{path}[{k!r}]", depth + 1))
        elif depth < _MAX_DEPTH and isinstance(item, list | tuple):
            for i in range(len(item) - 1, -1, -1):
                stack.append((item[i], f"{path}[{i}]", depth + 1))
    return None


def encodable(value: Any) -> Any:
    """``value`` with every string UTF-8 cannot encode backslash-escaped (keys too), integers
    beyond 64 bits as text;
    containers become dicts and lists, dataclasses and ``to_dict()`` objects their dicts."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode() if _bad(value) else value
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64 <= value < _UINT64:
        return str(value)  # JSON encoders stop at 64 bits
    if isinstance(value, Mapping):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return encodable(asdict(value))
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return encodable(to_dict())
    return value
