"""``StepContext``: the narrow view of a run a step body is given — never the scheduler.

A step path names one execution of a step within its run: ``draft`` for a top-level step,
``review/check`` inside a sub-workflow, ``fanout[3]`` for a map's fourth item, ``refine#2`` for
a loop's second iteration, and so on at any depth (``outer/inner/fanout[3]/check``). Span
data, recorded outputs and resumption (``Workflow.run(completed=...)``) are keyed by it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_orchestration._runtime import RunState, current_deadline
from ai_orchestration.errors import StepError

if TYPE_CHECKING:
    from ai_orchestration.tracing import Span
    from ai_orchestration.workflow import Workflow

__all__ = ["StepContext", "SubRun", "check_completed"]

# Runs a sub-workflow inside the current run: (workflow, input, its parent context) → output.
SubRun = Callable[["Workflow", Any, "StepContext"], Awaitable[Any]]
_FIRST_SEGMENT = re.compile(r"[/\[#]")


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step body may use: the run's id and state, its own step path and span, the
    deadline it runs under, and a way to run a sub-workflow. Plain data plus one function:
    what a checkpoint or a remote worker would carry."""

    state: RunState
    path: str
    span: Span
    sub_run: SubRun

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def deadline(self) -> float | None:
        """The event-loop time by which this step must finish, if any."""
        return current_deadline()

    def child(self, segment: str, span: Span) -> StepContext:
        """The context of a map item (``"[3]"``) or loop iteration (``"#2"``) of this step."""
        return StepContext(self.state, self.path + segment, span, self.sub_run)

    def completed(self, path: str) -> tuple[bool, Any]:
        """Whether the execution at ``path`` finished in an earlier attempt, and its output."""
        done = self.state.completed
        return (True, done[path]) if path in done else (False, None)

    async def run(self, workflow: Workflow, inp: Any) -> Any:
        """Run ``workflow`` as part of this step (its steps' paths start with this one's)."""
        return await self.sub_run(workflow, inp, self)


def check_completed(completed: Mapping[str, Any], top_level: Mapping[str, Any]) -> None:
    """Every path in ``completed`` must start with a step of the workflow being resumed."""
    for path in completed:
        first = _FIRST_SEGMENT.split(path, maxsplit=1)[0]
        if first not in top_level:
            raise StepError(f"cannot resume: unknown step {path!r}", step=path)
