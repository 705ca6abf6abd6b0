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
from ai_orchestration._runtime import Budget, call_voice
from ai_orchestration.agents import Agent, Handoff, Team, TeamResult
from ai_orchestration.consensus import Consensus, Vote
from ai_orchestration.context import (
    Context,
    Message,
    ToolCall,
    drop_tool_messages,
    keep_last,
    redact,
)
from ai_orchestration.errors import (
    AiOrchestrationError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CassetteMissError,
    CircuitOpenError,
    ConfigError,
    ConsensusError,
    DeadlineExceededError,
    InputError,
    JoinError,
    LoopLimitError,
    MalformedResponseError,
    NetworkBlockedError,
    NoConsensusError,
    ProviderUnavailableError,
    RateLimitedError,
    RunError,
    SerializationError,
    StepError,
    StoreError,
    UnknownVoiceError,
    UserError,
    VoiceError,
    VoiceTimeoutError,
    WorkflowError,
)
from ai_orchestration.orchestrator import AiOrchestration, Result
from ai_orchestration.voices import (
    StreamingVoice,
    ToolSpec,
    Usage,
    Voice,
    VoiceDelta,
    VoiceRequest,
    VoiceResponse,
    VoiceSettings,
)
from ai_orchestration.workflow import (
    All,
    Deadline,
    FirstSuccess,
    JoinPolicy,
    Quorum,
    Workflow,
    WorkflowBuilder,
)

if TYPE_CHECKING:
    from ai_orchestration.consensus import fuse

__version__ = "0.1.0"

# ``fuse`` pulls in numpy: it loads on first use.
__getattr__ = lazy_exports(__name__, {"fuse": "ai_orchestration.consensus._fuse"})


__all__ = [
    "Agent",
    "AiOrchestration",
    "AiOrchestrationError",
    "All",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "CassetteMissError",
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
    "JoinError",
    "JoinPolicy",
    "LoopLimitError",
    "MalformedResponseError",
    "Message",
    "NetworkBlockedError",
    "NoConsensusError",
    "ProviderUnavailableError",
    "Quorum",
    "RateLimitedError",
    "Result",
    "RunError",
    "RunResult",
    "SerializationError",
    "StepError",
    "StoreError",
    "StreamingVoice",
    "Team",
    "TeamResult",
    "ToolCall",
    "ToolSpec",
    "UnknownVoiceError",
    "Usage",
    "UserError",
    "Voice",
    "VoiceDelta",
    "VoiceError",
    "VoiceRequest",
    "VoiceResponse",
    "VoiceSettings",
    "VoiceTimeoutError",
    "Vote",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowError",
    "__version__",
    "call_voice",
    "drop_tool_messages",
    "fuse",
    "keep_last",
    "redact",
]
