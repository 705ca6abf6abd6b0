"""Reliability policies: voice middleware (timeout, deadline, retry, circuit breaker, fallback,
hedge, rate limit, output validation) and step policies, plus their config model.

A voice policy is middleware, ``async __call__(request, call_next)``, run by the one wrapper
``PolicyVoice``; circuits, limiters and statistics live in registries an owner holds
(``PolicyRegistries``), keyed by the voice's identity. Wrap a voice with ``with_policies``
(first policy = outermost)::

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
    counts_as_failure,
)
from ai_orchestration.policies._clock import Clock, FakeClock, SystemClock, system_clock
from ai_orchestration.policies._fallback import FallbackPolicy, FallbackResponse, FallbackVoice
from ai_orchestration.policies._hedge import HedgePolicy
from ai_orchestration.policies._ratelimit import (
    RateLimiter,
    RateLimitPolicy,
    RateLimitRegistry,
    RateLimits,
    TokenBucket,
    estimate_tokens,
)
from ai_orchestration.policies._registries import PolicyRegistries
from ai_orchestration.policies._retry import RetryPolicy, is_retryable
from ai_orchestration.policies._timeout import (
    DeadlinePolicy,
    TimeoutPolicy,
    current_deadline,
    deadline_scope,
    remaining_time,
)
from ai_orchestration.policies._validate import ValidationPolicy, check_schema, parse_json
from ai_orchestration.policies._wrap import (
    PolicyVoice,
    VoiceCall,
    VoiceMiddleware,
    VoicePolicy,
    with_policies,
)

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
    "PoliciesConfig",
    "PolicyRegistries",
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
    "VoiceCall",
    "VoiceMiddleware",
    "VoicePolicy",
    "apply_step_policies",
    "build_voices",
    "check_schema",
    "counts_as_failure",
    "current_deadline",
    "deadline_scope",
    "estimate_tokens",
    "is_retryable",
    "parse_json",
    "remaining_time",
    "system_clock",
    "with_policies",
]

__getattr__ = lazy_exports(
    __name__,
    dict.fromkeys(("PoliciesConfig", "build_voices"), "ai_orchestration.policies._config"),
)
