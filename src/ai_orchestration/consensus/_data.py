"""Vote tables: batch votes (list of mappings or a DataFrame) parsed into index arrays.

Rules, shared by every aggregator:

* rows whose ``answer`` is None or that carry a non-empty ``error`` are failed votes: skipped;
* ``confidence`` must be a finite number in [0, 1] (None or a missing key means "not given";
  in a DataFrame a NaN cell also means "not given");
* a ``distribution`` maps answers to non-negative finite numbers with a positive sum and is
  normalised; its answers join the candidate set;
* an (item, voice) pair may appear only once.

Any violation raises :class:`InputError` naming the row, item or voice.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ai_orchestration.errors import ConsensusError, InputError

__all__ = ["VoteTable", "parse_gold", "parse_votes", "sort_labels"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
_REQUIRED = ("item", "voice", "answer")
_NAN = math.nan


def sort_labels(labels: Iterable[Any]) -> list[Any]:
    """Sort answers deterministically (natural order when comparable, else by repr)."""
    unique = list(dict.fromkeys(labels))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=lambda a: (type(a).__name__, repr(a)))


@dataclass(frozen=True)
class VoteTable:
    """Votes as parallel arrays: one entry per valid (item, voice) vote."""

    items: list[Hashable]
    voices: list[str]
    labels: list[Any]
    item: IntArray
    voice: IntArray
    label: IntArray
    confidence: FloatArray
    dist: FloatArray | None
    n_failed: int = 0

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def onehot(self) -> FloatArray:
        """Each vote as a row over labels: its distribution when given, else its answer."""
        out = np.zeros((len(self.item), self.n_labels))
        out[np.arange(len(self.item)), self.label] = 1.0
        if self.dist is not None:
            has = ~np.isnan(self.dist[:, 0])
            out[has] = self.dist[has]
        return out

    def counts(self, weights: FloatArray | None = None) -> FloatArray:
        """Votes per (item, label), each counting 1 or its entry in ``weights`` (per vote)."""
        flat = self.item * self.n_labels + self.label
        n = self.n_items * self.n_labels
        summed = np.bincount(flat, weights=weights, minlength=n)
        out: FloatArray = summed.astype(np.float64).reshape(self.n_items, -1)
        return out


def _is_dataframe(votes: object) -> bool:
    return hasattr(votes, "columns") and hasattr(votes, "to_dict")


def _rows(votes: Any) -> list[Mapping[str, Any]]:
    if _is_dataframe(votes):
        records = votes.to_dict("records")
        for r in records:
            for key in ("confidence", "distribution", "error"):
                v = r.get(key)
                if isinstance(v, float) and math.isnan(v):
                    r[key] = None
        return list(records)
    if isinstance(votes, (Mapping, str | bytes)):
        raise InputError("votes must be an iterable of mappings or a DataFrame, got one mapping")
    rows = list(votes)
    for n, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise InputError(f"vote row {n} is {type(r).__name__}, expected a mapping")
        missing = [k for k in _REQUIRED if k not in r]
        if missing:
            raise InputError(f"vote row {n} lacks key(s) {', '.join(missing)}")
    return rows


def _confidence(row: Mapping[str, Any], n: int) -> float:
    c = row.get("confidence")
    if c is None:
        return math.nan
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise InputError(f"vote row {n}: confidence {c!r} is not a number") from None
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise InputError(
            f"vote row {n} (item {row['item']!r}, voice {row['voice']!r}): "
            f"confidence {c!r} is not in [0, 1]"
        )
    return value


def _distribution(row: Mapping[str, Any], n: int) -> dict[Any, float] | None:
    d = row.get("distribution")
    if d is None:
        return None
    if not isinstance(d, Mapping) or not d:
        raise InputError(f"vote row {n}: distribution must be a non-empty mapping")
    out: dict[Any, float] = {}
    for k, v in d.items():
        try:
            p = float(v)
        except (TypeError, ValueError):
            raise InputError(f"vote row {n}: distribution value {v!r} is not a number") from None
        if not math.isfinite(p) or p < 0:
            raise InputError(f"vote row {n}: distribution value {v!r} for {k!r} is invalid")
        out[k] = p
    total = sum(out.values())
    if total <= 0:
        raise InputError(f"vote row {n}: distribution sums to 0")
    return {k: p / total for k, p in out.items()}


def _failed(row: Mapping[str, Any]) -> bool:
    return row.get("answer") is None or bool(row.get("error"))


def parse_votes(
    votes: Any,
    *,
    labels: Sequence[Any] = (),
    extra_labels: Iterable[Any] = (),
) -> VoteTable:
    """Parse and validate batch votes; ``labels`` fixes the order of already-known answers."""
    if _is_dataframe(votes) and "distribution" not in votes.columns:
        return _parse_frame(votes, labels=labels, extra_labels=extra_labels)
    rows = _rows(votes)
    if not rows:
        raise InputError("no votes: the vote set is empty")
    valid = [(n, r) for n, r in enumerate(rows) if not _failed(r)]
    if not valid:
        raise ConsensusError(f"no valid votes: all {len(rows)} votes failed")
    seen: set[tuple[Any, Any]] = set()
    confs: list[float] = []
    dists: list[dict[Any, float] | None] = []
    new_labels: list[Any] = list(extra_labels)
    for n, r in valid:
        key = (r["item"], r["voice"])
        try:
            duplicate = key in seen
        except TypeError:
            raise InputError(f"vote row {n}: item {r['item']!r} is not hashable") from None
        if duplicate:
            raise InputError(f"duplicated vote: item {key[0]!r}, voice {key[1]!r}")
        seen.add(key)
        confs.append(_NAN if r.get("confidence") is None else _confidence(r, n))
        dist = None if r.get("distribution") is None else _distribution(r, n)
        dists.append(dist)
        new_labels.append(r["answer"])
        if dist is not None:
            new_labels.extend(dist)
    all_labels = _extend_labels(labels, new_labels)
    return _build(valid, all_labels, confs, dists, len(rows) - len(valid))


def _extend_labels(known: Sequence[Any], new: Iterable[Any]) -> list[Any]:
    """``known`` in its order, then the answers not in it, sorted (see ``sort_labels``)."""
    seen = set(known)
    return [*known, *(a for a in sort_labels(new) if a not in seen)]


def _index(values: Iterable[Any]) -> tuple[list[Any], IntArray]:
    lookup: dict[Any, int] = {}
    idx = [lookup.setdefault(v, len(lookup)) for v in values]
    return list(lookup), np.asarray(idx, dtype=np.intp)


def _build(
    valid: list[tuple[int, Mapping[str, Any]]],
    labels: list[Any],
    confs: list[float],
    dists: list[dict[Any, float] | None],
    n_failed: int,
) -> VoteTable:
    items, item = _index(r["item"] for _, r in valid)
    voice_names, voice = _index(str(r["voice"]) for _, r in valid)
    lab_index = {a: i for i, a in enumerate(labels)}
    label = np.asarray([lab_index[r["answer"]] for _, r in valid], dtype=np.intp)
    dist: FloatArray | None = None
    if any(d is not None for d in dists):
        dist = np.full((len(valid), len(labels)), np.nan)
        for n, d in enumerate(dists):
            if d is not None:
                dist[n] = 0.0
                for k, p in d.items():
                    dist[n, lab_index[k]] = p
    return VoteTable(
        items=items,
        voices=voice_names,
        labels=labels,
        item=item,
        voice=voice,
        label=label,
        confidence=np.asarray(confs, dtype=np.float64),
        dist=dist,
        n_failed=n_failed,
    )


def _parse_frame(frame: Any, *, labels: Sequence[Any], extra_labels: Iterable[Any]) -> VoteTable:
    """Vectorised path for a DataFrame without a distribution column."""
    missing = [k for k in _REQUIRED if k not in frame.columns]
    if missing:
        raise InputError(f"vote frame lacks column(s) {', '.join(missing)}")
    if len(frame) == 0:
        raise InputError("no votes: the vote set is empty")
    failed = frame["answer"].isna().to_numpy()
    if "error" in frame.columns:
        err = frame["error"]
        failed |= (err.notna() & (err.astype(str) != "")).to_numpy()
    if failed.all():
        raise ConsensusError(f"no valid votes: all {len(frame)} votes failed")
    ok = frame[~failed] if failed.any() else frame
    for key in ("item", "voice"):
        if ok[key].dtype.kind in "iub":  # integer and boolean columns hold no missing values
            continue
        absent = ok[key].isna().to_numpy()
        if absent.any():
            row = int(np.flatnonzero(~failed)[np.flatnonzero(absent)[0]])
            raise InputError(f"vote row {row}: {key} is missing")
    item_codes, item_uniques = _factorize(ok["item"])
    voice_codes, voice_uniques = _factorize_voices(ok["voice"])
    n_pairs = len(item_uniques) * len(voice_uniques)
    repeat = _first_repeat(item_codes * len(voice_uniques) + voice_codes, n_pairs)
    if repeat is not None:
        item, voice = divmod(repeat, len(voice_uniques))
        raise InputError(
            f"duplicated vote: item {item_uniques[item]!r}, voice {voice_uniques[voice]!r}"
        )
    conf = np.full(len(ok), np.nan)
    if "confidence" in ok.columns:
        conf = ok["confidence"].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(conf) & ((conf < 0) | (conf > 1))
        if bad.any():
            n = int(np.flatnonzero(bad)[0])
            raise InputError(f"vote row {n}: confidence {conf[n]!r} is not in [0, 1]")
    answer_codes, answer_uniques = _factorize(ok["answer"], any_order=True)  # labels get sorted
    answers = [a.item() if isinstance(a, np.generic) else a for a in answer_uniques]
    all_labels = _extend_labels(labels, [*extra_labels, *answers])
    lab_index = {a: i for i, a in enumerate(all_labels)}
    label = np.asarray([lab_index[a] for a in answers], dtype=np.intp)[answer_codes]
    return VoteTable(
        items=list(item_uniques),
        voices=voice_uniques,
        labels=all_labels,
        item=item_codes,
        voice=voice_codes,
        label=label,
        confidence=conf,
        dist=None,
        n_failed=int(failed.sum()),
    )


def _first_repeat(pair: IntArray, n_pairs: int) -> int | None:
    """The smallest (item, voice) pair code that occurs twice, if any."""
    if n_pairs <= 4 * len(pair):  # few enough codes to count them all
        repeats = np.flatnonzero(np.bincount(pair, minlength=n_pairs) > 1)
    else:
        ordered = np.sort(pair)
        repeats = ordered[1:][ordered[1:] == ordered[:-1]]
    return int(repeats[0]) if len(repeats) else None


def _factorize(column: Any, *, any_order: bool = False) -> tuple[IntArray, list[Any]]:
    """Codes and their values, as ``pd.factorize`` (in order of first appearance), but sorted
    integers are numbered by runs without hashing, and with ``any_order`` a small integer range
    is counted (values then ascending)."""
    import pandas as pd  # type: ignore[import-untyped]  # only reached with a DataFrame

    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
        values = column.to_numpy()
        if column.is_monotonic_increasing:  # e.g. votes listed item by item
            starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
            codes = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
            return codes, values[starts].tolist()
        lo, hi = (int(values.min()), int(values.max())) if any_order else (0, 1 << 62)
        if hi - lo < 4096:  # e.g. answers coded as small ints: count instead of hashing
            present = np.bincount(values - lo, minlength=hi - lo + 1) > 0
            remap = np.cumsum(present) - 1
            return remap[values - lo], (np.flatnonzero(present) + lo).tolist()
    elif getattr(column.dtype, "storage", None) == "python":
        column = column.to_numpy()  # Python strings hash faster from the object array
    codes, uniques = pd.factorize(column)
    return np.asarray(codes, dtype=np.intp), list(uniques)


def _factorize_voices(column: Any) -> tuple[IntArray, list[str]]:
    """Voices as strings; a column already holding only strings is not converted row by row."""
    if column.dtype.kind == "O":  # object, string or categorical: maybe strings already
        codes, uniques = _factorize(column)
        if all(isinstance(v, str) for v in uniques) and codes.min() >= 0:
            return codes, [str(v) for v in uniques]
    codes, uniques = _factorize(column.astype(str))
    return codes, [str(v) for v in uniques]


def parse_gold(gold: Mapping[Any, Any] | None, table: VoteTable) -> IntArray:
    """Gold as a label index per item (-1 where unknown); unknown items raise ``InputError``."""
    out = np.full(table.n_items, -1, dtype=np.intp)
    if not gold:
        return out
    if not isinstance(gold, Mapping):
        raise InputError("gold must map item -> true answer")
    item_index = {it: i for i, it in enumerate(table.items)}
    unknown = [it for it in gold if it not in item_index]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise InputError(f"gold names {len(unknown)} item(s) with no votes: {shown}")
    lab_index = {a: i for i, a in enumerate(table.labels)}
    for it, answer in gold.items():
        if answer not in lab_index:
            raise InputError(f"gold answer {answer!r} for item {it!r} is not a known answer")
        out[item_index[it]] = lab_index[answer]
    return out
