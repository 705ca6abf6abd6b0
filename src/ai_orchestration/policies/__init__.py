"""Reliability policies: voice wrappers (timeout, deadline, retry, circuit breaker, fallback,
hedge, rate limit, output validation) and step policies, plus their config model.

Wrap a voice with ``with_policies`` (first policy = outermost)::

    from ai_orchestration.policies import (
        CircuitPolicy, DeadlinePolicy, RetryPolicy, TimeoutPolicy, with_policies,
    )
    voice = with_policies(
        raw, DeadlinePolicy(30), RetryPolicy(), CircuitPolicy(), TimeoutPolicy(10)
    )

``PoliciesConfig`` and ``build_voices`` (pydantic) are imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_orchestration._lazy import lazy_exports
from ai_orchestration._policy import StepCall, StepPolicy, apply_step_policies
from ai_orchestration.policies._circuit import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitRegistry,
    CircuitSettings,
    CircuitState,
    circuits,
    counts_as_failure,
)
from ai_orchestration.policies._clock import Clock, FakeClock, SystemClock, system_clock
from ai_orchestration.policies._fallback import FallbackPolicy, FallbackResponse, FallbackVoice
from ai_orchestration.policies._hedge import HedgePolicy, HedgeVoice
from ai_orchestration.policies._ratelimit import (
    RateLimiter,
    RateLimitPolicy,
    RateLimitRegistry,
    RateLimits,
    TokenBucket,
    estimate_tokens,
    rate_limiters,
)
from ai_orchestration.policies._retry import RetryPolicy, is_retryable
from ai_orchestration.policies._timeout import (
    DeadlinePolicy,
    TimeoutPolicy,
    current_deadline,
    deadline_scope,
    remaining_time,
)
from ai_orchestration.policies._validate import ValidationPolicy, check_schema, parse_json
from ai_orchestration.policies._wrap import PolicyVoice, VoicePolicy, with_policies

if TYPE_CHECKING:
    from ai_orchestration.policies._config import PoliciesConfig, build_voices

__all__ = [
    "CircuitBreaker",
    "CircuitPolicy",
    "CircuitRegistry",
    "CircuitSettings",
    "CircuitState",
    "Clock",
    "DeadlinePolicy",
    "FakeClock",
    "FallbackPolicy",
    "FallbackResponse",
    "FallbackVoice",
    "HedgePolicy",
    "HedgeVoice",
    "PoliciesConfig",
    "PolicyVoice",
    "RateLimitPolicy",
    "RateLimitRegistry",
    "RateLimiter",
    "RateLimits",
    "RetryPolicy",
    "StepCall",
    "StepPolicy",
    "SystemClock",
    "TimeoutPolicy",
    "TokenBucket",
    "ValidationPolicy",
    "VoicePolicy",
    "apply_step_policies",
    "build_voices",
    "check_schema",
    "circuits",
    "counts_as_failure",
    "current_deadline",
    "deadline_scope",
    "estimate_tokens",
    "is_retryable",
    "parse_json",
    "rate_limiters",
    "remaining_time",
    "system_clock",
    "with_policies",
]

__getattr__ = lazy_exports(
    __name__,
    dict.fromkeys(("PoliciesConfig", "build_voices"), "ai_orchestration.policies._config"),
)
