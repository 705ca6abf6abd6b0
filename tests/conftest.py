"""Shared fixtures. Kept small: one guard against leaked asyncio tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it (structured concurrency)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let tasks that are already finishing finish
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    # asyncio closes an async generator dropped mid-iteration (httpx's body readers after an
    # abandoned stream) in a task of its own; no test started those, so let them drain.
    finalisers = {t for t in leaked if repr(t.get_coro()).startswith("<async_generator_athrow")}
    if finalisers:
        _, pending = await asyncio.wait(finalisers, timeout=1.0)
        leaked = (leaked - finalisers) | pending
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test left {len(leaked)} asyncio task(s) running: {sorted(map(repr, leaked))}")
