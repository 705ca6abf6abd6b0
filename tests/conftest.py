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
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test left {len(leaked)} asyncio task(s) running: {sorted(map(repr, leaked))}")
