"""ai-orchestration: many AI models, one answer.

>>> from ai_orchestration import AiOrchestration
>>> system = AiOrchestration()                 # doctest: +SKIP
>>> result = system.process("Capital of France?")  # doctest: +SKIP
>>> result.answer, result.confidence, result.run_id  # doctest: +SKIP

Heavy parts (numpy consensus math, HTTP adapters, local models) load on first use, so
``import ai_orchestration`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_orchestration._engine import RunResult
from ai_orchestration._lazy import lazy_exports
from ai_orchestration._runtime import Budget
from ai_orchestration.agents import Agent, Handoff, Team
from ai_orchestration.consensus import Consensus, Vote
from ai_orchestration.context import Context, Message, ToolCall, keep_last
from ai_orchestration.errors import (
    AiOrchestrationError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    ConsensusError,
    DeadlineExceededError,
    InputError,
    ProviderUnavailableError,
    RateLimitedError,
    RunError,
    SerializationError,
    StepError,
    StoreError,
    UserError,
    VoiceError,
    VoiceTimeoutError,
    WorkflowError,
)
from ai_orchestration.orchestrator import AiOrchestration, Result
from ai_orchestration.voices import Usage, Voice, VoiceRequest, VoiceResponse
from ai_orchestration.workflow import All, Deadline, FirstSuccess, Quorum, Workflow, WorkflowBuilder

if TYPE_CHECKING:
    from ai_orchestration.consensus import fuse

__version__ = "0.1.0"

# ``fuse`` pulls in numpy: it loads on first use.
__getattr__ = lazy_exports(__name__, {"fuse": "ai_orchestration.consensus._fuse"})

# What a user types in the first hour. Everything else lives in its sub-package: every error in
# ``ai_orchestration.errors``, voice types in ``.voices``, filters in ``.context``, the codec in
# ``.engine``, processors in ``.tracing``, fakes in ``.testing``.
__all__ = [
    "Agent",
    "AiOrchestration",
    "AiOrchestrationError",
    "All",
    "Budget",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigError",
    "Consensus",
    "ConsensusError",
    "Context",
    "Deadline",
    "DeadlineExceededError",
    "FirstSuccess",
    "Handoff",
    "InputError",
    "Message",
    "ProviderUnavailableError",
    "Quorum",
    "RateLimitedError",
    "Result",
    "RunError",
    "RunResult",
    "SerializationError",
    "StepError",
    "StoreError",
    "Team",
    "ToolCall",
    "Usage",
    "UserError",
    "Voice",
    "VoiceError",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceTimeoutError",
    "Vote",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowError",
    "__version__",
    "fuse",
    "keep_last",
]
