"""PostgreSQL connection strings: find and hide their passwords, take out the ``schema``.

Kept free of psycopg so the CLI and error messages can redact a URL without the extra.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["is_postgres_url", "passwords", "redact", "scrub", "split_schema"]

_URL = re.compile(r"^postgres(?:ql)?://", re.I)
# libpq ends the user info of a URL at the first '@' or '/'; the password follows the first ':'.
_URL_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:@/]*:)([^@/]*)(?=@)", re.I)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.I)
# A malformed unquoted value runs on to the next ``key=``: hide all of it.
_KV_PASSWORD = re.compile(
    r"((?:^|\s)password\s*=\s*)('(?:\\.|[^'\\])*'?|.*?(?=\s+\w+\s*=|\s*$))", re.I | re.S
)
_HIDDEN = "***"


def is_postgres_url(text: str) -> bool:
    """``postgresql://…`` or ``postgres://…`` (the two schemes libpq accepts)."""
    return bool(_URL.match(text))


def passwords(dsn: str) -> list[str]:
    """Every form in which the DSN's password(s) could appear in a message."""
    found: list[str] = []
    if is_postgres_url(dsn):
        spans = [m.group(2) for m in (_URL_PASSWORD.search(dsn),) if m]
        spans += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn)]
        for raw in spans:
            found += [raw, unquote(raw)]
    else:
        for m in _KV_PASSWORD.finditer(dsn):
            raw = m.group(2)
            found += [raw, re.sub(r"\\(.)", r"\1", raw.strip("'"))]
    return sorted({p for p in found if p}, key=len, reverse=True)


def redact(dsn: str) -> str:
    """The DSN with every password replaced by ``***``."""
    if is_postgres_url(dsn):
        dsn = _URL_PASSWORD.sub(rf"\1{_HIDDEN}", dsn)
        return _QUERY_PASSWORD.sub(rf"\1{_HIDDEN}", dsn)
    return _KV_PASSWORD.sub(rf"\1{_HIDDEN}", dsn)


def scrub(text: str, dsn: str) -> str:
    """``text`` with any password of ``dsn`` replaced by ``***``."""
    for secret in passwords(dsn):
        text = text.replace(secret, _HIDDEN)
    return text


def split_schema(dsn: str) -> tuple[str, str | None]:
    """Take the ``schema`` query parameter (ours, not libpq's) out of a URL."""
    base, sep, query = dsn.partition("?")
    if not sep or not is_postgres_url(dsn):
        return dsn, None
    schema, keep = None, []
    for param in query.split("&"):
        key, _, value = param.partition("=")
        if key.lower() == "schema":
            schema = unquote(value)
        else:
            keep.append(param)
    if schema is None:
        return dsn, None
    return base + ("?" + "&".join(keep) if keep else ""), schema
