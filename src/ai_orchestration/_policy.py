"""The policy plug points.

A *step policy* wraps one execution of a workflow step: the engine calls
``await policy(call, step=name)`` where ``call()`` runs the step (or the next policy) once.
Voice-level policies are voice wrappers instead (a wrapped voice is still a ``Voice``), so the
engine's single voice-call seam never needs to know which policies exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["StepCall", "StepPolicy", "apply_step_policies"]

StepCall = Callable[[], Awaitable[Any]]


class StepPolicy(Protocol):
    async def __call__(self, call: StepCall, *, step: str) -> Any: ...


def apply_step_policies(call: StepCall, policies: tuple[StepPolicy, ...], step: str) -> StepCall:
    """Compose ``policies`` around ``call``; the first policy is the outermost."""
    for policy in reversed(policies):

        def wrapped(inner: StepCall = call, p: StepPolicy = policy) -> Awaitable[Any]:
            return p(inner, step=step)

        call = wrapped
    return call
