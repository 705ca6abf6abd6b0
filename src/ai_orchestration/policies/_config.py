"""``PoliciesConfig``: the ``policies`` config section (pydantic), and the builder that wraps
a dict of voices with it. Imported lazily: pydantic stays off the hot path.

YAML example::

    policies:
      defaults:
        timeout: 10          # seconds per attempt
        deadline: 30         # seconds for the whole call (retries and fallbacks included)
        retry: {max_attempts: 3, base_delay: 0.2, max_delay: 5}
        circuit: {failure_rate: 0.5, min_calls: 5, window_s: 60, cooldown_s: 30, probes: 1}
      voices:
        gpt: {provider: openai, fallbacks: [claude, local], hedge: {quantile: 0.95}}
      rate_limits:
        openai: {requests_per_minute: 500, tokens_per_minute: 200000, max_concurrency: 16}
      budget: {max_tokens: 200000, max_cost_usd: 2.0, max_calls: 40, max_seconds: 120}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ai_orchestration._runtime import Budget
from ai_orchestration.config import BudgetConfig, validation_error
from ai_orchestration.errors import ConfigError
from ai_orchestration.policies._circuit import CircuitPolicy, CircuitSettings
from ai_orchestration.policies._clock import Clock, system_clock
from ai_orchestration.policies._fallback import FallbackPolicy
from ai_orchestration.policies._hedge import HedgePolicy
from ai_orchestration.policies._ratelimit import (
    RateLimitPolicy,
    RateLimits,
    limiter_key,
    provider_of,
)
from ai_orchestration.policies._registries import PolicyRegistries
from ai_orchestration.policies._retry import RetryPolicy
from ai_orchestration.policies._timeout import DeadlinePolicy, TimeoutPolicy
from ai_orchestration.policies._validate import ValidationPolicy
from ai_orchestration.policies._wrap import VoicePolicy, with_policies
from ai_orchestration.voices import Voice

__all__ = [
    "BudgetConfig",
    "CircuitConfig",
    "HedgeConfig",
    "PoliciesConfig",
    "RateLimitConfig",
    "RetryConfig",
    "ValidationConfig",
    "VoicePoliciesConfig",
    "build_voices",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryConfig(_Model):
    max_attempts: int = Field(default=3, ge=1)
    base_delay: float = Field(default=0.1, ge=0)
    max_delay: float = Field(default=10.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_retry_after: float = Field(default=60.0, gt=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _delays(self) -> RetryConfig:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be >= base_delay")
        return self


class CircuitConfig(_Model):
    key: str | None = None
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    probes: int = Field(default=1, ge=1)


class HedgeConfig(_Model):
    quantile: float = Field(default=0.95, gt=0, lt=1)
    min_samples: int = Field(default=20, ge=1)
    default_delay: float | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)


class ValidationConfig(_Model):
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    max_reasks: int = Field(default=1, ge=0)


class RateLimitConfig(_Model):
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    max_wait_s: float | None = Field(default=None, ge=0)


class VoicePoliciesConfig(_Model):
    """The policies of one voice (or the defaults). Unset fields inherit the defaults;
    ``null`` switches a policy off for this voice."""

    timeout: float | None = Field(default=None, gt=0)
    deadline: float | None = Field(default=None, gt=0)
    retry: RetryConfig | None = None
    circuit: CircuitConfig | None = None
    hedge: HedgeConfig | None = None
    validation: ValidationConfig | None = None
    fallbacks: list[str] = Field(default_factory=list)
    provider: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> VoicePoliciesConfig:
        if self.timeout is not None and self.deadline is not None and self.deadline < self.timeout:
            raise ValueError(f"deadline {self.deadline} is shorter than timeout {self.timeout}")
        hedge_delay = self.hedge.delay if self.hedge is not None else None
        if hedge_delay is not None and self.timeout is not None and hedge_delay >= self.timeout:
            raise ValueError("hedge.delay >= timeout: the hedge could never be sent")
        return self

    def over(self, base: VoicePoliciesConfig) -> VoicePoliciesConfig:
        """These settings on top of ``base`` (fields set here win)."""
        merged = {k: getattr(base, k) for k in type(self).model_fields}
        merged.update({k: getattr(self, k) for k in self.model_fields_set})
        return VoicePoliciesConfig.model_validate(merged)


class PoliciesConfig(_Model):
    """The ``policies`` section: defaults, per-voice overrides, provider rate limits, budget."""

    defaults: VoicePoliciesConfig = VoicePoliciesConfig()
    voices: dict[str, VoicePoliciesConfig] = Field(default_factory=dict)
    rate_limits: dict[str, RateLimitConfig] = Field(default_factory=dict)
    budget: BudgetConfig | None = None

    @classmethod
    def load(
        cls,
        data: Mapping[str, Any] | None,
        *,
        voices: Iterable[str] | None = None,
        file: str | None = None,
        text: str | None = None,
        yaml: bool = True,
    ) -> PoliciesConfig:
        """Validate ``data`` (and, given ``voices``, every voice name it mentions); ``text``,
        the file's source (YAML, or TOML with ``yaml=False``), puts line numbers on errors."""
        try:
            config = cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise validation_error(
                exc, file=file, text=text, yaml=yaml, prefix=("policies",)
            ) from None
        if voices is not None:
            config.check_voices(voices, file=file)
        return config

    def check_voices(self, known: Iterable[str], *, file: str | None = None) -> None:
        """Raise ``ConfigError`` for a policy or fallback naming a voice nobody defined."""
        names = set(known)
        for voice, vc in self.voices.items():
            if voice not in names:
                raise ConfigError(
                    f"unknown voice {voice!r} (known: {sorted(names)})",
                    file=file,
                    field=f"policies.voices.{voice}",
                )
            for i, fb in enumerate(vc.fallbacks):
                if fb not in names or fb == voice:
                    why = "is the voice itself" if fb == voice else "is not a known voice"
                    raise ConfigError(
                        f"fallback {fb!r} {why}",
                        file=file,
                        field=f"policies.voices.{voice}.fallbacks[{i}]",
                    )

    def for_voice(self, name: str) -> VoicePoliciesConfig:
        vc = self.voices.get(name)
        return self.defaults if vc is None else vc.over(self.defaults)

    def budget_limits(self) -> Budget | None:
        b = self.budget
        if b is None:
            return None
        return Budget(b.max_tokens, b.max_cost_usd, b.max_calls, b.max_seconds)


def _base_stack(
    name: str,
    voice: Voice,
    vc: VoicePoliciesConfig,
    config: PoliciesConfig,
    *,
    clock: Clock,
    registries: PolicyRegistries,
) -> list[VoicePolicy]:
    stack: list[VoicePolicy] = []
    if vc.validation is not None:
        stack.append(ValidationPolicy(vc.validation.json_schema, None, vc.validation.max_reasks))
    if vc.retry is not None:
        r = vc.retry
        stack.append(
            RetryPolicy(
                r.max_attempts, r.base_delay, r.max_delay, r.multiplier, r.max_retry_after,
                r.seed, clock=clock,
            )
        )  # fmt: skip
    if vc.circuit is not None:
        c = vc.circuit
        settings = CircuitSettings(c.failure_rate, c.min_calls, c.window_s, c.cooldown_s, c.probes)
        stack.append(CircuitPolicy(c.key, settings, registry=registries.circuits, clock=clock))
    if vc.hedge is not None:
        h = vc.hedge
        stats = registries.stats
        stack.append(HedgePolicy(h.quantile, h.min_samples, h.default_delay, h.delay, stats=stats))
    if vc.timeout is not None:
        stack.append(TimeoutPolicy(vc.timeout))
    key = vc.provider or provider_of(name)
    rl = config.rate_limits.get(key)
    if rl is not None:
        limits = RateLimits(
            rl.requests_per_minute, rl.tokens_per_minute, rl.max_concurrency, rl.max_wait_s
        )
        shared = limiter_key(voice, key)
        stack.append(RateLimitPolicy(limits, shared, registry=registries.rate_limits, clock=clock))
    return stack


def build_voices(
    config: PoliciesConfig,
    voices: Mapping[str, Voice],
    *,
    clock: Clock = system_clock,
    registries: PolicyRegistries | None = None,
) -> dict[str, Voice]:
    """Wrap every voice in its policies, outermost first: deadline, fallback (to the other
    voices' own stacks), validation, retry, circuit, hedge, per-attempt timeout, rate limit.
    Their circuits, limiters and hedging statistics live in ``registries`` (default: new
    ones, shared by these voices only)."""
    config.check_voices(voices)
    owned = registries if registries is not None else PolicyRegistries()
    per = {name: config.for_voice(name) for name in voices}
    base: dict[str, Voice] = {}
    for name, voice in voices.items():
        stack = _base_stack(name, voice, per[name], config, clock=clock, registries=owned)
        base[name] = with_policies(voice, *stack)
    out: dict[str, Voice] = {}
    for name, vc in per.items():
        outer: list[VoicePolicy] = []
        if vc.deadline is not None:
            outer.append(DeadlinePolicy(vc.deadline))
        if vc.fallbacks:
            outer.append(FallbackPolicy([base[f] for f in vc.fallbacks]))
        out[name] = with_policies(base[name], *outer)
    return out
