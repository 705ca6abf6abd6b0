"""Reliability policies: step policies and voice wrappers."""

from ai_orchestration.policies._base import StepCall, StepPolicy, apply_step_policies

__all__ = ["StepCall", "StepPolicy", "apply_step_policies"]
