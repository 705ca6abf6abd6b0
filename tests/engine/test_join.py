"""The join state machine, table by table: every policy, every way to get there."""

from __future__ import annotations

import pytest

from ai_orchestration.engine._join import Decision, JoinState, Outcome, needed
from ai_orchestration.workflow import All, Deadline, FirstSuccess, JoinPolicy, Quorum

W, R, F, S = Decision.WAIT, Decision.READY, Decision.FAILED, Decision.SKIP
ok, bad, skip, TIME = Outcome.OK, Outcome.FAILED, Outcome.SKIPPED, "deadline"

# policy, inputs, events ("deadline" = the time passed), decision after each event, reason
TABLE: list[tuple[JoinPolicy, int, list[object], list[Decision], str | None]] = [
    (All(), 3, [ok, ok, ok], [W, W, R], None),
    (All(), 3, [ok, bad, ok], [W, F, F], None),  # the failed input's own error travels on
    (All(), 2, [skip, ok], [W, R], None),  # a skipped input counts as resolved
    (All(), 2, [skip, skip], [W, S], "every input was skipped"),
    (FirstSuccess(), 3, [bad, ok, ok], [W, R, R], None),
    (FirstSuccess(), 2, [bad, bad], [W, F], "no dependency succeeded"),
    (FirstSuccess(), 2, [skip, bad], [W, F], "no dependency succeeded"),
    (Quorum(2), 3, [ok, bad, ok], [W, W, R], None),
    (Quorum(2), 3, [bad, bad], [W, F], "quorum of 2 unreachable (0 ok)"),
    (Quorum(2), 4, [ok, bad, bad, bad], [W, W, W, F], "quorum of 2 unreachable (1 ok)"),
    (Quorum(3), 3, [ok, skip], [W, F], "quorum of 3 unreachable (1 ok)"),
    (Deadline(1.0), 3, [ok, ok, ok], [W, W, R], None),  # all arrived before the time
    (Deadline(1.0), 3, [ok, TIME, ok], [W, R, R], None),  # time's up with one: enough
    (Deadline(0.5, min_results=2), 3, [ok, TIME], [W, F], "deadline 0.5s passed with 1 result(s)"),
    (Deadline(1.0, min_results=2), 2, [ok, bad], [W, F], "1 of 2 needed arrived"),
    (Deadline(1.0), 2, [TIME], [F], "deadline 1.0s passed with 0 result(s)"),
    (Quorum(1), 2, [TIME, ok], [W, R], None),  # a deadline means nothing to other joins
]


@pytest.mark.parametrize(("policy", "total", "events", "expected", "reason"), TABLE)
def test_join_table(
    policy: JoinPolicy,
    total: int,
    events: list[object],
    expected: list[Decision],
    reason: str | None,
) -> None:
    state = JoinState(policy, total)
    got = [
        state.deadline_passed() if e == TIME else state.record(e)  # type: ignore[arg-type]
        for e in events
    ]
    assert got == expected
    assert state.decision is expected[-1]
    assert state.reason == reason


def test_a_decision_once_made_does_not_change() -> None:
    state = JoinState(Quorum(1), 3)
    assert state.record(ok) is R
    assert state.record(bad) is R and state.deadline_passed() is R
    assert (state.ok, state.failed, state.pending) == (1, 0, 2)  # later events are not counted


@pytest.mark.parametrize(
    ("policy", "total", "n"),
    [(All(), 4, 4), (FirstSuccess(), 4, 1), (Quorum(3), 4, 3), (Deadline(2.0, 2), 4, 2)],
)
def test_needed(policy: JoinPolicy, total: int, n: int) -> None:
    assert needed(policy, total) == n
