"""The state voice policies keep between calls, in one object an owner holds.

An ``AiOrchestration`` creates its own ``PolicyRegistries``: its circuits, rate limiters and
voice statistics are never another instance's. Hand the same object to several instances to
share them on purpose (e.g. workers calling one API account).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ai_orchestration.policies._circuit import CircuitRegistry
from ai_orchestration.policies._ratelimit import RateLimitRegistry
from ai_orchestration.stats import StatsRegistry

__all__ = ["PolicyRegistries"]


@dataclass(frozen=True, slots=True)
class PolicyRegistries:
    """Circuits and rate limiters (keyed by voice identity) and voice statistics (by voice
    name, as the store records calls).

    >>> a, b = PolicyRegistries(), PolicyRegistries()
    >>> a.circuits is b.circuits
    False
    """

    circuits: CircuitRegistry = field(default_factory=CircuitRegistry)
    rate_limits: RateLimitRegistry = field(default_factory=RateLimitRegistry)
    stats: StatsRegistry = field(default_factory=StatsRegistry)
