"""The one join state machine: from the outcomes of a step's inputs so far — dependencies,
votes or parallel handoff branches — decide whether to wait, go on, fail or skip.

Pure and synchronous: the scheduler, the consensus step and teams feed it outcomes and act
on its decision; it knows nothing of tasks or timers (a passed deadline is one more event).

>>> from ai_orchestration.workflow import Quorum
>>> join = JoinState(Quorum(2), total=3)
>>> join.record(Outcome.OK), join.record(Outcome.FAILED), join.record(Outcome.OK)
(<Decision.WAIT: 'wait'>, <Decision.WAIT: 'wait'>, <Decision.READY: 'ready'>)
"""

from __future__ import annotations

from enum import StrEnum
from typing import assert_never

from ai_orchestration.workflow import All, Deadline, FirstSuccess, JoinPolicy, Quorum

__all__ = ["Decision", "JoinState", "Outcome", "needed"]


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency a route did not choose


class Decision(StrEnum):
    WAIT = "wait"  # not decided yet
    READY = "ready"  # the join is satisfied: go on with what arrived
    FAILED = "failed"  # it can no longer be satisfied (``JoinState.reason`` says why)
    SKIP = "skip"  # every input was skipped: the step is skipped too


def needed(policy: JoinPolicy, total: int) -> int:
    """How many of ``total`` inputs must succeed."""
    match policy:
        case All():
            return total
        case FirstSuccess():
            return 1
        case Quorum(k=k):
            return k
        case Deadline(min_results=m):
            return m
        case _:
            assert_never(policy)


class JoinState:
    """Outcome counts for one join and the decision they imply.

    ``record`` and ``deadline_passed`` return the decision after the event; once it is not
    ``WAIT`` it no longer changes. ``reason`` explains a ``FAILED`` decision, except for
    ``All`` failing on a failed input (``None``: that input's own error should travel on).
    """

    __slots__ = ("decision", "failed", "ok", "policy", "reason", "skipped", "total")

    def __init__(self, policy: JoinPolicy, total: int) -> None:
        self.policy, self.total = policy, total
        self.ok = self.failed = self.skipped = 0
        self.decision = Decision.WAIT
        self.reason: str | None = None

    @property
    def pending(self) -> int:
        return self.total - self.ok - self.failed - self.skipped

    def record(self, outcome: Outcome) -> Decision:
        if self.decision is not Decision.WAIT:
            return self.decision
        if outcome is Outcome.OK:
            self.ok += 1
        elif outcome is Outcome.FAILED:
            self.failed += 1
        else:
            self.skipped += 1
        return self._decide(deadline=False)

    def deadline_passed(self) -> Decision:
        """A ``Deadline`` join's time is up: decide with what arrived."""
        if self.decision is not Decision.WAIT:
            return self.decision
        return self._decide(deadline=True)

    def _decide(self, *, deadline: bool) -> Decision:
        # Plain type checks, most common first: this runs once per input of every step.
        total, ok, skipped, policy = self.total, self.ok, self.skipped, self.policy
        if skipped == total and total:
            return self._set(Decision.SKIP, "every input was skipped")
        pending = total - ok - self.failed - skipped
        kind = type(policy)
        if kind is All:
            if self.failed:
                return self._set(Decision.FAILED, None)
            return self._set(Decision.READY) if pending == 0 else Decision.WAIT
        if kind is FirstSuccess:
            if ok:
                return self._set(Decision.READY)
            return self._failed_if(pending == 0, "no dependency succeeded")
        if isinstance(policy, Quorum):
            if ok >= policy.k:
                return self._set(Decision.READY)
            if ok + pending < policy.k:
                return self._set(Decision.FAILED, f"quorum of {policy.k} unreachable ({ok} ok)")
            return Decision.WAIT
        assert isinstance(policy, Deadline)
        if not (deadline or pending == 0):
            return Decision.WAIT
        if ok >= policy.min_results:
            return self._set(Decision.READY)
        if deadline:
            return self._set(
                Decision.FAILED, f"deadline {policy.seconds}s passed with {ok} result(s)"
            )
        return self._set(Decision.FAILED, f"{ok} of {policy.min_results} needed arrived")

    def _failed_if(self, unreachable: bool, why: str) -> Decision:
        return self._set(Decision.FAILED, why) if unreachable else Decision.WAIT

    def _set(self, decision: Decision, reason: str | None = None) -> Decision:
        self.decision, self.reason = decision, reason
        return decision
