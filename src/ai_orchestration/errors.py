"""The whole exception tree of ai-orchestration.

Every error the library raises derives from :class:`AiOrchestrationError`. User errors (bad
config, bad input, an invalid workflow) are separate from run errors (a voice failed, a deadline
passed, no consensus) and from store/backend errors, so callers can catch by intent::

    AiOrchestrationError
    ├── UserError                      bad input from the caller; the CLI exits 2
    │   ├── ConfigError                a config file/object is invalid (file, line, field)
    │   ├── WorkflowError              a workflow definition is invalid (every problem, by step)
    │   ├── InputError                 a run input is unusable (wrong type, oversized)
    │   ├── UnknownVoiceError          a voice name or "provider:model" spec nobody knows
    │   └── CassetteMissError          a replayed request is not in the cassette
    ├── RunError                       a run started and could not finish normally
    │   ├── StepError                  a step raised; carries the step name and the cause
    │   ├── DeadlineExceededError      a step or run timeout passed
    │   ├── LoopLimitError             a bounded loop reached its bound without finishing
    │   ├── JoinError                  a join policy can no longer be satisfied
    │   ├── SerializationError         a value could not be serialised where it had to be
    │   ├── ConsensusError             votes could not be fused (no valid votes, bad votes)
    │   ├── BudgetExceededError        a run budget (tokens, cost, time, calls) ran out
    │   └── VoiceError                 a voice call failed; carries the voice name
    │       ├── RateLimitedError       429; carries retry_after seconds when known
    │       ├── ProviderUnavailableError 5xx / overloaded / connection refused
    │       ├── AuthenticationError    401/403 (never carries key material)
    │       ├── BadRequestError        4xx the provider blames on the request (unknown model…)
    │       ├── VoiceTimeoutError      the call did not answer in time
    │       ├── MalformedResponseError the provider answered something we cannot parse
    │       ├── CircuitOpenError       the circuit breaker refuses calls for now
    │       └── NetworkBlockedError    a non-loopback request while network_guard() is on
    └── StoreError                     persistence failed (SQLite/PostgreSQL)

Errors pickle with all their attributes (they cross process boundaries on Ray).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AiOrchestrationError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CassetteMissError",
    "CircuitOpenError",
    "ConfigError",
    "ConsensusError",
    "DeadlineExceededError",
    "InputError",
    "JoinError",
    "LoopLimitError",
    "MalformedResponseError",
    "NetworkBlockedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RunError",
    "SerializationError",
    "StepError",
    "StoreError",
    "UnknownVoiceError",
    "UserError",
    "VoiceError",
    "VoiceTimeoutError",
    "WorkflowError",
]


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class AiOrchestrationError(Exception):
    """Root of every error raised by ai-orchestration."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (_restore, (type(self), self.args, self.__dict__))


# --- user errors ---------------------------------------------------------------------------


class UserError(AiOrchestrationError):
    """The caller gave something unusable; fixing the input fixes the problem."""


class ConfigError(UserError):
    """Invalid configuration; names the file, line and field when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = f"{where}: " if where else ""
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)
        self.file, self.line, self.field = file, line, field


class WorkflowError(UserError):
    """A workflow definition is invalid; ``problems`` lists every problem found."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        listed = "; ".join(problems)
        super().__init__(f"workflow {workflow!r} is invalid: {listed}")
        self.workflow, self.problems = workflow, list(problems)


class InputError(UserError):
    """A run input is unusable (wrong type, oversized, empty)."""


class UnknownVoiceError(UserError):
    """A voice name or ``provider:model`` spec that no registry entry knows."""

    def __init__(self, message: str, *, voice: str) -> None:
        super().__init__(message)
        self.voice = voice


class CassetteMissError(UserError):
    """A replayed request is not in the cassette (re-record it, or fix the request)."""

    def __init__(self, message: str, *, voice: str, fingerprint: str) -> None:
        super().__init__(message)
        self.voice, self.fingerprint = voice, fingerprint


# --- run errors ----------------------------------------------------------------------------


class RunError(AiOrchestrationError):
    """A run started and could not finish normally."""


class StepError(RunError):
    """A step raised an exception; ``step`` names it and ``__cause__`` holds the original."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class DeadlineExceededError(RunError):
    """A step or run timeout passed; ``scope`` is the step name or ``"run"``."""

    def __init__(self, message: str, *, scope: str, timeout: float) -> None:
        super().__init__(message)
        self.scope, self.timeout = scope, timeout


class LoopLimitError(RunError):
    """A bounded loop hit ``max_iterations`` before its ``until`` condition held."""

    def __init__(self, message: str, *, step: str, max_iterations: int) -> None:
        super().__init__(message)
        self.step, self.max_iterations = step, max_iterations


class JoinError(RunError):
    """A join policy can no longer be satisfied (e.g. too many branches failed)."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class SerializationError(RunError):
    """A value could not be encoded or decoded; ``path`` says where it sits
    (``steps.draft.output.items[3]``) or, when decoding, which encoded type was unknown."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class ConsensusError(RunError):
    """Votes could not be fused into an answer."""


class BudgetExceededError(RunError):
    """A run budget ran out; ``partial`` holds whatever the run had produced so far."""

    def __init__(self, message: str, *, budget: str, limit: float, partial: Any = None) -> None:
        super().__init__(message)
        self.budget, self.limit, self.partial = budget, limit, partial


class VoiceError(RunError):
    """A voice call failed. ``retryable`` tells the reliability layer whether to try again."""

    retryable: bool = False

    def __init__(self, message: str, *, voice: str, status: int | None = None) -> None:
        super().__init__(f"voice {voice!r}: {message}")
        self.voice, self.status = voice, status


class RateLimitedError(VoiceError):
    """The provider rate-limited the call (HTTP 429)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        voice: str,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, voice=voice, status=status)
        self.retry_after = retry_after


class ProviderUnavailableError(VoiceError):
    """The provider is down or overloaded (5xx, connection refused)."""

    retryable = True


class AuthenticationError(VoiceError):
    """The provider rejected the credentials (401/403)."""


class BadRequestError(VoiceError):
    """The provider rejected the request itself (unknown model, invalid parameters)."""


class VoiceTimeoutError(VoiceError):
    """The voice did not answer within its timeout."""

    retryable = True


class MalformedResponseError(VoiceError):
    """The provider's answer could not be parsed (truncated JSON, HTML page, cut stream)."""

    retryable = True


class CircuitOpenError(VoiceError):
    """The voice's circuit breaker is open; calls are refused until it half-opens."""


class NetworkBlockedError(VoiceError):
    """A voice tried to reach a non-loopback host while ``testing.network_guard`` was active."""


# --- persistence ---------------------------------------------------------------------------


class StoreError(AiOrchestrationError):
    """Persistence failed (SQLite or PostgreSQL)."""
