"""Render a trace (live, or a JSONL audit file) as an indented text tree a person can read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ai_orchestration.errors import InputError

__all__ = ["render_audit_file", "render_records"]

_MARK = {"ok": "✓", "error": "✗", "cancelled": "⊘", "skipped": "·", "running": "…"}


def _summary(rec: Mapping[str, Any]) -> str:
    data = rec.get("data") or {}
    kind = rec.get("kind")
    if kind == "voice":
        out = data.get("output")
        return f"→ {str(out)[:60]!r}" if out is not None else ""
    if kind == "consensus":
        conf = data.get("confidence")
        conf_text = f" ({conf:.3f})" if isinstance(conf, int | float) else ""
        return f"answer {str(data.get('answer'))[:60]!r}{conf_text}"
    if kind == "handoff":
        return f"{data.get('messages')} messages, filters {data.get('filters') or []}"
    return ""


def render_records(records: Iterable[Mapping[str, Any]]) -> str:
    """Indented tree of span records (dicts as written by the audit log)."""
    recs = list(records)
    children: dict[Any, list[Mapping[str, Any]]] = {}
    for r in recs:
        children.setdefault(r.get("parent_id"), []).append(r)
    lines: list[str] = []

    def walk(parent: Any, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: r.get("start_ns") or 0):
            ms = r.get("duration_ms")
            timing = f"{ms:.2f} ms" if isinstance(ms, int | float) else "-"
            mark = _MARK.get(str(r.get("status")), "?")
            line = f"{'  ' * depth}{mark} {r.get('kind')}:{r.get('name')}  {timing}"
            summary = _summary(r)
            if summary:
                line += f"  {summary}"
            if r.get("error"):
                line += f"  [{r['error']}]"
            lines.append(line)
            walk(r.get("span_id"), depth + 1)

    roots = {r.get("parent_id") for r in recs} - {r.get("span_id") for r in recs}
    for root in sorted(roots, key=str):
        walk(root, 0)
    return "\n".join(lines)


def render_audit_file(path: str | Path) -> str:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read trace file {path}: {exc.strerror}") from None
    records = []
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(f"{path}:{i}: not a JSON span record") from None
        if not _is_span_record(record):
            raise InputError(f"{path}:{i}: not a span record ({_SPAN_FIELDS_TEXT} expected)")
        records.append(record)
    if not records:
        raise InputError(f"{path}: no span records (an empty file is not a trace)")
    return render_records(records)


_SPAN_FIELDS = ("span_id", "kind", "name", "status")
_SPAN_FIELDS_TEXT = ", ".join(_SPAN_FIELDS)


def _is_span_record(record: Any) -> bool:
    """The fields every audit line has, with the types the audit writes."""
    return (
        isinstance(record, dict)
        and all(k in record for k in _SPAN_FIELDS)
        and isinstance(record["span_id"], int)
        and isinstance(record["kind"], str)
        and isinstance(record["status"], str)
        and isinstance(record.get("data", {}), dict)
    )
