"""Re-export of the step-policy plug point (defined in ``ai_orchestration._policy`` so the
engine can use it without importing every policy)."""

from ai_orchestration._policy import StepCall, StepPolicy, apply_step_policies

__all__ = ["StepCall", "StepPolicy", "apply_step_policies"]
