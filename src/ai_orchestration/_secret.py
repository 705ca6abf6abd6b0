"""Secrets as a type, and URLs shown without their credentials.

A :class:`Secret` never shows its value: ``repr``, ``str``, pydantic's ``model_dump`` and
``model_dump_json`` all give the mask; only :meth:`Secret.reveal` returns it, and only the code
that builds a request or a connection calls that. URLs are shown (in errors, reprs, traces and
stores) with their user info and secret query parameters masked by :func:`scrub_url`.

>>> Secret("sk-123")
Secret('**********')
>>> scrub_url("http://user:pw@host:8080/v1?model=m&api_key=abc")
'http://user:***@host:8080/v1?model=m&api_key=***'
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

__all__ = ["MASK", "Secret", "is_secret_name", "scrub_url", "scrub_urls", "url_secrets"]

MASK = "**********"
_HIDDEN = "***"

# Names whose value is a credential whatever it looks like (config options, headers, fields).
_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "x-goog-api-key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "bearer_token",
        "private_key",
    }
)
# Query parameters that carry credentials (Gemini's ``key``, SAS ``sig``, presigned AWS URLs…).
_SECRET_PARAM = re.compile(
    r"(?i)^(?:[\w.-]*[_.-])?(?:key|apikey|token|sig|signature|secret|password|passwd|pwd"
    r"|credential|auth|code|session)$"
)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\\`]+")
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$", re.S)


def is_secret_name(name: str) -> bool:
    """Whether a field, option or header called ``name`` always holds a credential."""
    return name.lower() in _SECRET_NAMES


class Secret:
    """A string that never shows itself; ``reveal()`` returns it. Usable as a pydantic field
    type: validated from a string, dumped (Python and JSON) as the mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))  # crosses to Ray workers intact; repr stays masked

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _to_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda s: MASK, when_used="always"
            ),
        )


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError(f"a secret must be a string, not {type(value).__name__}")


def _scrub_query(query: str) -> str:
    parts = []
    for param in query.split("&"):
        name, sep, value = param.partition("=")
        secret = sep and value and _SECRET_PARAM.match(name)
        parts.append(f"{name}={_HIDDEN}" if secret else param)
    return "&".join(parts)


def scrub_url(url: str) -> str:
    """``url`` with a user info password (or a bare user info, often a token) and the values
    of secret query parameters replaced by ``***``. Not a URL: returned unchanged."""
    m = _AUTHORITY.match(url)
    if m is None:
        return url
    scheme, authority, rest = m.groups()
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{_HIDDEN}@{host}" if colon else f"{_HIDDEN}@{host}"
    path, qmark, query = rest.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        rest = f"{path}?{_scrub_query(query)}{hash_}{fragment}"
    return scheme + authority + rest


def scrub_urls(text: str) -> str:
    """Every URL inside ``text`` passed through :func:`scrub_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: scrub_url(m.group(0)), text)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials ``scrub_url`` masks in ``url`` (as written and percent-decoded), so
    text that quotes them some other way can be scrubbed too."""
    m = _AUTHORITY.match(url)
    if m is None:
        return ()
    found: list[str] = []
    userinfo, at, _ = m[2].rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    query = m[3].partition("?")[2].partition("#")[0]
    for param in query.split("&") if query else ():
        name, sep, value = param.partition("=")
        if sep and value and _SECRET_PARAM.match(name):
            found.append(value)
    both = {v for raw in found for v in (raw, unquote(raw)) if v}
    return tuple(sorted(both, key=len, reverse=True))
