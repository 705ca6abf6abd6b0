"""Cheap shared timers for the hot path.

``asyncio.timeout`` costs a loop timer plus a context manager per use (~7 µs here); a voice
call wrapped in a deadline, a per-attempt timeout and a hedge would pay that three times.
Instead every alarm of a loop goes into one heap served by a single loop timer armed for the
earliest live alarm; cancelling an alarm only flags it (dead entries are dropped when they
reach the top, or compacted when they pile up).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
from collections.abc import Callable

__all__ = ["Alarm", "Alarms", "TaskTimer", "alarms"]

_seq = itertools.count()


def _noop() -> None:
    pass


class Alarm:
    """One scheduled callback; ``cancel()`` is O(1)."""

    __slots__ = ("active", "fire", "owner")

    def __init__(self, owner: Alarms, fire: Callable[[], None]) -> None:
        self.owner, self.fire, self.active = owner, fire, True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self.fire = _noop  # the entry stays in the heap until popped: free what it holds
            self.owner.dead += 1


class Alarms:
    """All alarms of one event loop, served by one loop timer."""

    __slots__ = ("armed_at", "dead", "handle", "heap", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Alarm]] = []
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at = math.inf
        self.dead = 0

    def add(self, when: float, fire: Callable[[], None]) -> Alarm:
        """Call ``fire()`` at loop time ``when`` unless the returned alarm is cancelled first."""
        alarm = Alarm(self, fire)
        heap = self.heap
        heapq.heappush(heap, (when, next(_seq), alarm))
        if when < self.armed_at:
            self._arm(when)
        if self.dead > 1024 and self.dead * 2 > len(heap):
            self._compact()
        return alarm

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = self.loop.call_at(when, self._run)
        self.armed_at = when

    def _compact(self) -> None:
        self.heap = [e for e in self.heap if e[2].active]
        heapq.heapify(self.heap)
        self.dead = 0

    def _run(self) -> None:
        self.handle, self.armed_at = None, math.inf
        now = self.loop.time() + 1e-6
        heap = self.heap
        while heap and (heap[0][0] <= now or not heap[0][2].active):
            alarm = heapq.heappop(heap)[2]
            if alarm.active:
                alarm.active = False
                alarm.fire()
            else:
                self.dead -= 1
        if heap:
            self._arm(heap[0][0])


class _Current(threading.local):
    alarms: Alarms | None = None


_current = _Current()


def alarms() -> Alarms:
    """The running loop's alarms, cached per thread (a thread runs one loop at a time, so a
    finished loop's alarms are dropped when the next loop asks)."""
    loop = asyncio.get_running_loop()
    found = _current.alarms
    if found is None or found.loop is not loop:
        found = _current.alarms = Alarms(loop)
    return found


class TaskTimer:
    """Cancel the current task at loop time ``when`` (what ``asyncio.timeout_at`` does, on the
    shared alarms). Call ``disarm()`` once when the guarded code exits, however it exits."""

    __slots__ = ("alarm", "cancelling", "expired", "task")

    def __init__(self, reg: Alarms, when: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task, self.expired = task, False
        self.cancelling = task.cancelling()
        self.alarm = reg.add(when, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self.task.cancel()

    def disarm(self) -> bool:
        """Stop the alarm and withdraw its cancel request if it fired (also when the guarded
        code turned the cancellation into another exception or answered anyway); True when
        this alarm is why the task is being cancelled."""
        self.alarm.cancel()
        return self.expired and self.task.uncancel() <= self.cancelling
