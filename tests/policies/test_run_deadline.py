"""The run's and a step's timeout are the deadline every policy inside them sees."""

from __future__ import annotations

import time

import pytest

from ai_orchestration import WorkflowBuilder
from ai_orchestration._runtime import call_voice
from ai_orchestration.errors import DeadlineExceededError, ProviderUnavailableError
from ai_orchestration.policies import RetryPolicy, remaining_time, with_policies
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceRequest


async def _left(_: object) -> float | None:
    return remaining_time()


async def test_run_timeout_is_the_deadline_steps_see() -> None:
    wf = WorkflowBuilder("w").step("left", _left).build()
    assert (await wf.run(None)).output is None  # no timeout: no deadline
    left = (await wf.run(None, timeout=5.0)).output
    assert left is not None and 4.5 < left <= 5.0


async def test_a_step_timeout_tightens_the_run_deadline_and_nested_steps_inherit_it() -> None:
    inner = WorkflowBuilder("inner").step("left", _left).build()
    wf = WorkflowBuilder("w").step("sub", inner, timeout=1.0).step("after", _left).build()
    run = await wf.run(None, timeout=5.0)
    sub_left, after_left = run.outputs["sub"], run.outputs["after"]
    assert 0.5 < sub_left <= 1.0  # the sub-workflow's step sees the step's tighter deadline
    assert 4.0 < after_left <= 5.0  # the next step is back under the run's deadline


async def test_a_step_timeout_never_extends_the_run_deadline() -> None:
    wf = WorkflowBuilder("w").step("left", _left, timeout=60.0).build()
    left = (await wf.run(None, timeout=2.0)).output
    assert left is not None and left <= 2.0


async def test_retry_gives_up_before_the_run_deadline_instead_of_sleeping_past_it() -> None:
    calls = 0

    def failing(_: VoiceRequest) -> str:
        nonlocal calls
        calls += 1
        raise ProviderUnavailableError("503 from the provider", voice="flaky")

    # with this seed the first backoff is 2.38 s: far longer than the run's 0.5 s deadline
    retry = RetryPolicy(max_attempts=5, base_delay=10.0, seed=3)
    voice = with_policies(FunctionVoice("flaky", failing), retry)

    async def ask(_: object) -> str:
        return (await call_voice(voice, VoiceRequest.from_prompt("q"))).text or ""

    wf = WorkflowBuilder("w").step("ask", ask).build()
    started = time.perf_counter()
    with pytest.raises(Exception) as info:
        await wf.run(None, timeout=0.5)
    elapsed = time.perf_counter() - started
    # the provider's own error, at once: not a run timeout after a futile 0.5 s sleep
    assert not isinstance(info.value, DeadlineExceededError)
    assert "503 from the provider" in str(info.value)
    assert elapsed < 0.3
    assert calls == 1


async def test_the_deadline_is_cleared_after_the_run() -> None:
    wf = WorkflowBuilder("w").step("left", _left).build()
    await wf.run(None, timeout=1.0)
    assert remaining_time() is None
