"""Declarative routing: rules with conditions and priorities, A/B buckets, load balancing,
health gating from live circuit state, hot reload, and ``explain``.

A ``routing`` config section (YAML)::

    routing:
      default: [local]
      voices:                      # optional profiles for "cheapest" and health keys
        gpt:    {cost: 0.002, quality: 0.9, circuit_key: "openai:gpt-4o-mini"}
        local:  {cost: 0.0,   quality: 0.6}
      rules:
        - name: legal-fr
          priority: 10
          when: {language: [fr], tags_any: [legal], min_length: 200}
          voices: [claude, gpt]
        - name: experiment
          when: {fields: {task: summarise}}
          ab: {key: user_id, split: {gpt: 50, claude: 50}}
        - name: bulk
          voices: [gpt, local]
          strategy: cheapest       # first | round_robin | weighted | least_latency | cheapest
          min_quality: 0.5

``Router.select(input)`` returns a ``RouteDecision``; ``Router.explain(input)`` says why.
Routing never calls a voice: health comes from circuit breakers that real calls feed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ai_orchestration.errors import ConfigError
from ai_orchestration.policies._circuit import CircuitRegistry
from ai_orchestration.policies._clock import Clock, system_clock
from ai_orchestration.stats import StatsRegistry
from ai_orchestration.voices import VoiceRequest

if TYPE_CHECKING:
    from ai_orchestration.policies._routing_config import RoutingConfig, RuleConfig

__all__ = [
    "RouteDecision",
    "RouteInput",
    "Router",
    "ab_bucket",
    "detect_language",
    "load_routing",
    "mismatch",
]

log = logging.getLogger("ai_orchestration.routing")

Strategy = Literal["first", "round_robin", "weighted", "least_latency", "cheapest"]

_SCRIPTS = (
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)
_STOPWORDS = {
    "en": "the and is are of to in that it for what with this you how was",
    "fr": "le la les et est des une un du que pour dans qui pas sur au",
    "de": "der die das und ist nicht ein eine zu mit den von für auf sich",
    "es": "el la los las y es de que en un una por para con no se",
    "it": "il la gli le e è di che un una per non con del della",
    "pt": "o a os as e é de que um uma para não com do da em",
    "nl": "de het een en is van dat niet op te met voor zijn",
}
_STOPSETS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str | None:
    """A cheap guess (script, then stopwords) as an ISO 639-1 code, or None.

    >>> detect_language("Quelle est la capitale de la France ?")
    'fr'
    """
    sample = text[:2000]
    for lang, pattern in _SCRIPTS:
        if pattern.search(sample):
            return lang
    words = [w.lower() for w in _WORD.findall(sample)[:300]]
    if not words:
        return None
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPSETS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else None


@dataclass(frozen=True, slots=True)
class RouteInput:
    """What routing looks at: text, fields (the input mapping), tags, metadata, language."""

    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    language: str | None = None

    @classmethod
    def of(cls, value: Any) -> RouteInput:
        """From a string, a ``VoiceRequest`` or a mapping (``text``/``prompt``/``input``,
        ``tags``, ``metadata``, ``language``; every key is also a field)."""
        if isinstance(value, RouteInput):
            return value
        if isinstance(value, VoiceRequest):
            meta = value.metadata
            return cls._build(value.prompt, dict(meta), meta.get("tags", ()), meta, None)
        if isinstance(value, Mapping):
            text = value.get("text") or value.get("prompt") or value.get("input") or ""
            meta = value.get("metadata") or {}
            return cls._build(str(text), value, value.get("tags", ()), meta, value.get("language"))
        return cls._build(str(value), {}, (), {}, None)

    @classmethod
    def _build(
        cls, text: str, fields: Mapping[str, Any], tags: Any, meta: Any, lang: Any
    ) -> RouteInput:
        tag_set = frozenset([tags] if isinstance(tags, str) else (str(t) for t in tags or ()))
        language = str(lang) if lang else detect_language(text)
        meta_map = meta if isinstance(meta, Mapping) else {}
        return cls(text, fields, tag_set, meta_map, language)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The chosen panel of voices, the ordered healthy fallbacks, the rule and why.

    ``panel`` holds the voices that answer together (one unless the rule or config sets
    ``panel``); ``voice`` is its first. ``healthy`` is False when every candidate's circuit was
    open (the candidates are returned anyway so the caller gets a fast ``CircuitOpenError``
    rather than silence).
    """

    panel: tuple[str, ...]
    rule: str | None
    fallbacks: tuple[str, ...] = ()
    reason: str = ""
    skipped: tuple[str, ...] = ()
    healthy: bool = True
    trail: tuple[str, ...] = ()

    @property
    def voice(self) -> str:
        return self.panel[0]

    def to_dict(self) -> dict[str, Any]:
        """What the trace and the result record (the trail is for ``explain``)."""
        return {
            "rule": self.rule,
            "voices": list(self.panel),
            "fallbacks": list(self.fallbacks),
            "reason": self.reason,
            "skipped": list(self.skipped),
            "healthy": self.healthy,
        }


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


_MISSING = object()
_NO_ROUTE = "no rule matched and no default voice is configured"


def _matches_value(actual: Any, expected: Any) -> bool:
    if actual is _MISSING:
        return False
    if isinstance(expected, list):
        return actual in expected
    return bool(actual == expected)


def mismatch(rule: RuleConfig, ri: RouteInput) -> str | None:
    """Why ``rule``'s conditions do not hold for ``ri`` (None: they hold)."""
    w = rule.when
    n = len(ri.text)
    if w.min_length is not None and n < w.min_length:
        return f"length {n} < min_length {w.min_length}"
    if w.max_length is not None and n > w.max_length:
        return f"length {n} > max_length {w.max_length}"
    if w.language is not None and ri.language not in w.language:
        return f"language {ri.language!r} not in {w.language}"
    if w.tags_any is not None and not ri.tags & set(w.tags_any):
        return f"none of tags {w.tags_any} in {sorted(ri.tags)}"
    if w.tags_all is not None and not set(w.tags_all) <= ri.tags:
        return f"not all of tags {w.tags_all} in {sorted(ri.tags)}"
    for key, expected in w.fields.items():
        actual = _lookup(ri.fields, key)
        if not _matches_value(actual, expected):
            return f"field {key}={actual!r} is not {expected!r}"
    for key, expected in w.metadata.items():
        actual = _lookup(ri.metadata, key)
        if not _matches_value(actual, expected):
            return f"metadata {key}={actual!r} is not {expected!r}"
    if w.pattern is not None and not re.search(w.pattern, ri.text):
        return f"text does not match {w.pattern!r}"
    return None


def ab_bucket(rule: str, salt: str, key: str) -> float:
    """A stable bucket in [0, 100) for ``key`` (blake2b; same key → same bucket forever)."""
    digest = hashlib.blake2b(f"{salt}|{rule}|{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % 10_000) / 100


class Router:
    """Pick a voice for an input from a validated ``RoutingConfig``.

    >>> router = Router.from_mapping({"rules": [{"name": "all", "voices": ["a", "b"]}]})
    >>> router.select("hello").voice
    'a'
    """

    def __init__(
        self,
        config: RoutingConfig,
        *,
        circuit_registry: CircuitRegistry | None = None,
        stats: StatsRegistry | None = None,
        circuit_keys: Mapping[str, str] | None = None,
        path: Path | None = None,
        known_voices: Iterable[str] | None = None,
        check_interval: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        # The owner's circuits and statistics (an AiOrchestration passes its own) and each
        # voice's circuit key (its identity); a voice without one is looked up by name.
        self.circuits = circuit_registry if circuit_registry is not None else CircuitRegistry()
        self.stats = stats if stats is not None else StatsRegistry()
        self.circuit_keys: Mapping[str, str] = dict(circuit_keys or {})
        self.clock = clock
        self.path, self.check_interval = path, check_interval
        self.known_voices = None if known_voices is None else tuple(known_voices)
        self.last_error: str | None = None
        self._mtime = path.stat().st_mtime_ns if path is not None else 0
        self._checked = clock.now()
        self._install(config)

    def _install(self, config: RoutingConfig) -> None:
        self.config = config
        order = sorted(range(len(config.rules)), key=lambda i: (-config.rules[i].priority, i))
        self._rules = [config.rules[i] for i in order]
        self._rr: dict[str, int] = {}
        self._wrr: dict[str, dict[str, float]] = {}

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, voices: Iterable[str] | None = None, **kw: Any
    ) -> Router:
        """Validate a ``routing`` mapping (a ``ConfigError`` names rule and field)."""
        return cls(load_routing(data, voices=voices), known_voices=voices, **kw)

    @classmethod
    def from_file(
        cls, path: str | Path, *, voices: Iterable[str] | None = None, **kw: Any
    ) -> Router:
        """Load the file's ``routing`` section (or the whole file) and watch it for changes."""
        p = Path(path)
        names = None if voices is None else tuple(voices)
        try:  # before reading: an edit made while we read is picked up by the next check
            mtime = p.stat().st_mtime_ns
        except OSError:
            mtime = 0  # _load_file says what is wrong
        router = cls(_load_file(p, names), path=p, known_voices=names, **kw)
        router._mtime = mtime
        return router

    # --- hot reload ------------------------------------------------------------------------

    def maybe_reload(self) -> bool:
        """Reload the file if it changed (checked at most every ``check_interval`` s)."""
        return self._check_due() and self._reload_if_changed()

    def _check_due(self) -> bool:
        """Whether the file is to be checked now (no I/O: the clock only)."""
        if self.path is None:
            return False
        now = self.clock.now()
        if now - self._checked < self.check_interval:
            return False
        self._checked = now
        return True

    def _reload_if_changed(self) -> bool:
        assert self.path is not None
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError as exc:
            return self._reject(f"cannot stat {self.path}: {exc.strerror}")
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        return self.reload()

    def reload(self) -> bool:
        """Reload now; a bad file keeps the last good config, logs why and returns False."""
        if self.path is None:
            return False
        try:
            config = _load_file(self.path, self.known_voices)
        except ConfigError as exc:
            return self._reject(str(exc))
        self._install(config)
        self.last_error = None
        log.info("routing: reloaded %s", self.path)
        return True

    def _reject(self, why: str) -> bool:
        self.last_error = why
        log.warning("routing: keeping the last good config; reload failed: %s", why)
        return False

    # --- selection -------------------------------------------------------------------------

    def select(self, value: Any) -> RouteDecision:
        """Choose voices for ``value`` (a string, mapping or ``VoiceRequest``); a
        ``ConfigError`` when no rule matches and no default is configured."""
        decision = self.route(value)
        if decision is None:
            raise ConfigError(_NO_ROUTE, field="routing")
        return decision

    def route(self, value: Any) -> RouteDecision | None:
        """Like ``select``, but None when no rule matches and no default is configured."""
        self.maybe_reload()
        return self._decide(RouteInput.of(value), advance=True)[0]

    async def aroute(self, value: Any) -> RouteDecision | None:
        """``route`` for async callers: the file is checked and re-read on a worker thread,
        never on the event loop."""
        if self._check_due():
            await asyncio.to_thread(self._reload_if_changed)
        return self._decide(RouteInput.of(value), advance=True)[0]

    def explain(self, value: Any) -> str:
        """Which rule would fire for ``value`` and why, without changing any rotation."""
        ri = RouteInput.of(value)
        d, trail = self._decide(ri, advance=False)
        head = (
            f"input: {len(ri.text)} chars, language={ri.language}, tags={sorted(ri.tags)}, "
            f"metadata={dict(ri.metadata)}"
        )
        if d is None:
            tail = f"=> {_NO_ROUTE}"
        else:
            chosen = f"voice {d.voice!r}" if len(d.panel) == 1 else f"voices {list(d.panel)}"
            tail = f"=> {chosen} (rule {d.rule!r}; fallbacks: {list(d.fallbacks)})"
            if not d.healthy:
                tail += " [every candidate's circuit is open]"
        return "\n".join([head, *trail, tail])

    def _decide(
        self, ri: RouteInput, *, advance: bool
    ) -> tuple[RouteDecision | None, tuple[str, ...]]:
        """The decision (None: nothing matched, no default) and the trail of reasons."""
        trail: list[str] = []
        first_unhealthy: RouteDecision | None = None
        for rule in self._rules:
            label = f"rule {rule.name!r} (priority {rule.priority})"
            why = mismatch(rule, ri)
            if why is not None:
                trail.append(f"{label}: no match: {why}")
                continue
            ordered, reason = self._order(rule, ri, advance)
            healthy, skipped = self._health(ordered)
            trail.append(f"{label}: match; {reason}")
            trail.extend(f"  {s}" for s in skipped)
            panel = rule.panel or self.config.panel
            if healthy:
                d = _decision(healthy, panel, rule.name, reason, skipped, True, trail)
                return d, d.trail
            if first_unhealthy is None:
                first_unhealthy = _decision(ordered, panel, rule.name, reason, skipped, False, [])
        return self._fallback(trail, first_unhealthy), tuple(trail)

    def _fallback(self, trail: list[str], unhealthy: RouteDecision | None) -> RouteDecision | None:
        default = list(self.config.default)
        healthy, skipped = self._health(default)
        trail.append(f"default {default}" if default else "no default voices configured")
        trail.extend(f"  {s}" for s in skipped)
        panel = self.config.panel
        if healthy:
            return _decision(healthy, panel, None, "default", skipped, True, trail)
        if unhealthy is not None:
            return replace(unhealthy, trail=tuple(trail))
        if default:
            return _decision(default, panel, None, "default", skipped, False, trail)
        return None

    def _health(self, voices: Sequence[str]) -> tuple[list[str], list[str]]:
        healthy, skipped = [], []
        profiles = self.config.voices
        for v in voices:
            prof = profiles.get(v)
            key = prof.circuit_key if prof is not None and prof.circuit_key else None
            key = key or self.circuit_keys.get(v, v)
            if self.circuits.available(key):
                healthy.append(v)
            else:
                skipped.append(f"{v!r} skipped: circuit {key!r} is open")
        return healthy, skipped

    def _order(self, rule: RuleConfig, ri: RouteInput, advance: bool) -> tuple[list[str], str]:
        voices = list(rule.voices)
        if rule.ab is not None:
            return self._ab(rule, ri, voices)
        match rule.strategy:
            case "first":
                return voices, f"first of {voices}"
            case "round_robin":
                i = self._rr.get(rule.name, 0)
                if advance:
                    self._rr[rule.name] = i + 1
                k = i % len(voices)
                return voices[k:] + voices[:k], f"round robin turn {i}"
            case "weighted":
                return self._weighted(rule, voices, advance)
            case "least_latency":
                return self._least_latency(voices)
            case "cheapest":
                return self._cheapest(rule, voices)
        raise AssertionError(rule.strategy)  # pragma: no cover - validated by the model

    def _ab(self, rule: RuleConfig, ri: RouteInput, voices: list[str]) -> tuple[list[str], str]:
        ab = rule.ab
        assert ab is not None
        raw = _lookup(ri.fields, ab.key)
        if raw is _MISSING:
            raw = _lookup(ri.metadata, ab.key)
        key = ri.text if raw is _MISSING else str(raw)
        bucket = ab_bucket(rule.name, ab.salt, key)
        acc, arm = 0.0, next(iter(ab.split))
        for voice, share in ab.split.items():
            acc += share
            if bucket < acc:
                arm = voice
                break
        rest = [v for v in (*ab.split, *voices) if v != arm]
        source = "text" if raw is _MISSING else f"{ab.key}={key!r}"
        return [arm, *dict.fromkeys(rest)], f"A/B bucket {bucket:.2f} of {source} -> {arm!r}"

    def _weighted(
        self, rule: RuleConfig, voices: list[str], advance: bool
    ) -> tuple[list[str], str]:
        weights = rule.weights or dict.fromkeys(voices, 1.0)
        state = dict(self._wrr.get(rule.name) or dict.fromkeys(weights, 0.0))
        total = sum(weights.values())
        for v, w in weights.items():  # smooth weighted round robin (deterministic)
            state[v] += w
        pick = max(weights, key=lambda v: state[v])
        state[pick] -= total
        if advance:
            self._wrr[rule.name] = state
        rest = sorted((v for v in voices if v != pick), key=lambda v: -weights.get(v, 0.0))
        return [pick, *rest], f"weighted {weights} -> {pick!r}"

    def _least_latency(self, voices: list[str]) -> tuple[list[str], str]:
        def p50(v: str) -> float:
            st = self.stats.get(v)
            q = st.p50 if st is not None else None
            return 0.0 if q is None else q  # unmeasured voices first: they need samples

        ordered = sorted(voices, key=p50)
        shown = {v: round(1000 * p50(v), 1) for v in ordered}
        return ordered, f"least p50 latency (ms) {shown}"

    def _cheapest(self, rule: RuleConfig, voices: list[str]) -> tuple[list[str], str]:
        profiles = self.config.voices
        bar = rule.min_quality

        def cost(v: str) -> float:
            prof = profiles.get(v)
            if prof is not None and prof.cost is not None:
                return prof.cost
            st = self.stats.get(v)
            return st.mean_cost_usd if st is not None else 0.0

        good = [v for v in voices if bar is None or _quality(profiles, v) >= bar]
        ordered = sorted(good, key=cost)
        return ordered, f"cheapest with quality >= {bar}: {[(v, cost(v)) for v in ordered]}"


def _decision(
    voices: Sequence[str],
    panel: int,
    rule: str | None,
    reason: str,
    skipped: Sequence[str],
    healthy: bool,
    trail: Sequence[str],
) -> RouteDecision:
    return RouteDecision(
        tuple(voices[:panel]), rule, tuple(voices[panel:]), reason, tuple(skipped), healthy,
        tuple(trail),
    )  # fmt: skip


def _quality(profiles: Mapping[str, Any], voice: str) -> float:
    prof = profiles.get(voice)
    return 1.0 if prof is None else float(prof.quality)


def load_routing(
    data: Mapping[str, Any] | None,
    *,
    voices: Iterable[str] | None = None,
    file: str | None = None,
    text: str | None = None,
) -> RoutingConfig:
    """Validate a ``routing`` section; ``ConfigError`` names the rule and field."""
    from ai_orchestration.policies._routing_config import validate_routing

    return validate_routing(data, voices=voices, file=file, text=text)


def _load_file(path: Path, voices: Sequence[str] | None) -> RoutingConfig:
    """The file's ``routing`` section (or the whole file), from TOML, YAML or JSON."""
    from ai_orchestration.config import _parse_file

    is_json = path.suffix.lower() == ".json"
    data, source = _parse_json(path) if is_json else _parse_file(path)
    # error lines are looked up in YAML only, under its 'routing:' key
    yaml_section = "routing" in data and path.suffix.lower() in (".yaml", ".yml")
    text = source if yaml_section else None
    return load_routing(data.get("routing", data), voices=voices, file=str(path), text=text)


def _parse_json(path: Path) -> tuple[dict[str, Any], str]:
    from ai_orchestration.config import read_text_file

    text = read_text_file(path, what="config file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", file=str(path), line=1)
    return data, text
