"""The sync bridge: one event loop in a daemon thread that the synchronous facade runs on.

Keeping a single loop lets pooled HTTP clients and cached local models live across
``process`` calls; ``close`` runs a last coroutine there (closing those clients) and stops it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "in_event_loop"]

T = TypeVar("T")


class LoopThread:
    """A lazily started event loop in a thread; ``run`` blocks until a coroutine is done."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The bridge's loop while it runs, else None."""
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="ai-orchestration-loop", daemon=True
                ).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self, last: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Stop the loop, after running ``last()`` on it (when the loop was started)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if last is not None:
            asyncio.run_coroutine_threadsafe(last(), loop).result()
        loop.call_soon_threadsafe(loop.stop)


def in_event_loop() -> bool:
    """Whether this thread is running an event loop right now."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
