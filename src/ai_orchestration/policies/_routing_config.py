"""The ``routing`` config section as pydantic models, validated before any run.

Lives beside ``_config`` (the ``policies`` section) so pydantic stays out of the hot path:
``ai_orchestration.routing`` imports it only when a config is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ai_orchestration.config import validation_error
from ai_orchestration.errors import ConfigError

__all__ = ["ABConfig", "ConditionConfig", "RoutingConfig", "RuleConfig", "VoiceProfile"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class ConditionConfig(_Model):
    """All given conditions must hold. ``fields``/``metadata`` values may be lists (one of);
    keys may be dotted paths."""

    fields: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    language: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    pattern: str | None = None

    _lists = field_validator("language", "tags_any", "tags_all", mode="before")(_listify)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            import re

            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @property
    def empty(self) -> bool:
        return self == ConditionConfig()


class ABConfig(_Model):
    """Deterministic A/B buckets: ``split`` maps voices to percentages summing to 100."""

    key: str = "user_id"
    split: dict[str, float]
    salt: str = ""

    @field_validator("split")
    @classmethod
    def _percentages(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("needs at least one voice")
        if any(p < 0 for p in v.values()):
            raise ValueError("percentages must be >= 0")
        if abs(sum(v.values()) - 100) > 1e-6:
            raise ValueError(f"percentages must sum to 100, not {sum(v.values()):g}")
        return v


class RuleConfig(_Model):
    name: str = Field(min_length=1)
    priority: int = 0
    when: ConditionConfig = ConditionConfig()
    voices: list[str] = Field(default_factory=list)
    strategy: Literal["first", "round_robin", "weighted", "least_latency", "cheapest"] = "first"
    weights: dict[str, float] | None = None
    min_quality: float | None = Field(default=None, ge=0, le=1)
    ab: ABConfig | None = None
    panel: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _coherent(self) -> RuleConfig:
        if not self.voices and self.ab is None:
            raise ValueError("a rule needs voices or an ab split")
        if self.weights is not None:
            if self.strategy != "weighted":
                raise ValueError("weights given but strategy is not 'weighted'")
            if any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()) > 0:
                raise ValueError("weights must be >= 0 with a positive sum")
            stray = sorted(set(self.weights) - set(self.voices))
            if stray:
                raise ValueError(f"weights name voices not in this rule: {stray}")
        if self.min_quality is not None and self.strategy != "cheapest":
            raise ValueError("min_quality only applies to strategy 'cheapest'")
        if self.panel is not None and self.panel > len(self.candidates):
            raise ValueError(
                f"panel of {self.panel} voices but the rule names {len(self.candidates)}"
            )
        return self

    @property
    def candidates(self) -> list[str]:
        """Every voice the rule may choose: its voices and its A/B arms, once each."""
        return list(dict.fromkeys([*self.voices, *(self.ab.split if self.ab else ())]))


class VoiceProfile(_Model):
    """Static facts about a voice for routing: relative cost, quality in [0, 1], circuit key."""

    cost: float | None = Field(default=None, ge=0)
    quality: float = Field(default=1.0, ge=0, le=1)
    circuit_key: str | None = None


class RoutingConfig(_Model):
    """``panel``: how many of the chosen voices answer together (and are fused); the rest of
    the healthy candidates are fallbacks. A rule's own ``panel`` overrides it."""

    rules: list[RuleConfig] = Field(default_factory=list)
    default: list[str] = Field(default_factory=list)
    voices: dict[str, VoiceProfile] = Field(default_factory=dict)
    panel: int = Field(default=1, ge=1)

    _default_list = field_validator("default", mode="before")(_listify)


def _never_matches(rule: RuleConfig) -> tuple[str, str] | None:
    """(field, why) when the rule's conditions contradict each other."""
    w = rule.when
    if w.min_length is not None and w.max_length is not None and w.min_length > w.max_length:
        return "when.min_length", f"min_length {w.min_length} > max_length {w.max_length}"
    for name in ("language", "tags_any"):
        if getattr(w, name) == []:
            return f"when.{name}", "an empty list matches nothing"
    return None


def _check_rules(config: RoutingConfig, known: set[str] | None) -> tuple[str, str] | None:
    """(field, message) of the first semantic problem, or None."""
    seen: dict[str, int] = {}
    order = sorted(range(len(config.rules)), key=lambda i: (-config.rules[i].priority, i))
    catch_all: RuleConfig | None = None
    for i in order:
        rule = config.rules[i]
        where = f"rules[{i}]"
        if rule.name in seen:
            return f"{where}.name", f"duplicate rule name {rule.name!r}"
        seen[rule.name] = i
        never = _never_matches(rule)
        if never is not None:
            return f"{where}.{never[0]}", f"rule {rule.name!r} can never match: {never[1]}"
        if catch_all is not None:
            return where, (
                f"rule {rule.name!r} can never match: rule {catch_all.name!r} (priority "
                f"{catch_all.priority}) matches every input first; use 'default' for fallbacks"
            )
        if rule.when.empty and rule.ab is None:
            catch_all = rule
        problem = _check_voices(rule, where, config, known)
        if problem is not None:
            return problem
    if known is not None:
        for j, v in enumerate(config.default):
            if v not in known:
                return f"default[{j}]", f"unknown voice {v!r}"
        for v in config.voices:
            if v not in known:
                return f"voices.{v}", f"unknown voice {v!r}"
    return None


def _check_voices(
    rule: RuleConfig, where: str, config: RoutingConfig, known: set[str] | None
) -> tuple[str, str] | None:
    if known is not None:
        for j, v in enumerate(rule.voices):
            if v not in known:
                return f"{where}.voices[{j}]", f"rule {rule.name!r}: unknown voice {v!r}"
        for v in rule.ab.split if rule.ab else ():
            if v not in known:
                return f"{where}.ab.split.{v}", f"rule {rule.name!r}: unknown voice {v!r}"
    if rule.strategy == "cheapest" and rule.min_quality is not None:
        profiles = config.voices
        if not any(
            (profiles[v].quality if v in profiles else 1.0) >= rule.min_quality for v in rule.voices
        ):
            return (
                f"{where}.min_quality",
                f"rule {rule.name!r} can never select a voice: none has quality >= "
                f"{rule.min_quality}",
            )
    return None


def validate_routing(
    data: Mapping[str, Any] | None,
    *,
    voices: Iterable[str] | None = None,
    file: str | None = None,
    text: str | None = None,
) -> RoutingConfig:
    """Validate a ``routing`` section; every error names the rule and the field."""
    try:
        config = RoutingConfig.model_validate(dict(data or {}))
    except ValidationError as exc:
        err = validation_error(exc, file=file, text=text, yaml=True, prefix=("routing",))
        raise _named(err, exc, data) from None
    problem = _check_rules(config, None if voices is None else set(voices))
    if problem is not None:
        raise ConfigError(problem[1], file=file, field=f"routing.{problem[0]}")
    return config


def _named(err: ConfigError, exc: ValidationError, data: Mapping[str, Any] | None) -> ConfigError:
    """Add the rule's name to a pydantic error located under ``rules[i]``."""
    loc = exc.errors()[0]["loc"]
    if data is None or len(loc) < 2 or loc[0] != "rules" or not isinstance(loc[1], int):
        return err
    try:
        name = data["rules"][loc[1]].get("name")
    except (KeyError, IndexError, TypeError, AttributeError):
        return err
    msg = err.message.split(f"{err.field}: ", 1)[-1]
    return ConfigError(f"rule {name!r}: {msg}", file=err.file, line=err.line, field=err.field)
