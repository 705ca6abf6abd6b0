"""Hedged requests: a second request after the voice's observed p95 latency; first answer wins.

The first attempt runs in the caller's task; a timer starts the hedge as a task owned by this
call, which is always cancelled and awaited before ``respond`` returns (no orphan task). When
the hedge wins, the first attempt is cancelled the way ``asyncio.timeout`` does it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field

from ai_orchestration.policies._alarms import alarms
from ai_orchestration.policies._wrap import PolicyVoice, VoiceCall, note
from ai_orchestration.stats import StatsRegistry
from ai_orchestration.voices import Voice, VoiceRequest, VoiceResponse

__all__ = ["HedgePolicy", "Hedging"]


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Send a second request when the first has not answered after a delay.

    The delay is the ``quantile`` of the voice's per-attempt latencies, which every hedged
    voice records under ``"<voice>/attempt"`` (``stats_key`` overrides the key), once
    ``min_samples`` were seen; until then the same quantile of its whole-call latencies (from
    the engine, e.g. seeded from the state folder: an upper bound, since retries inside count);
    else ``default_delay`` (None: do not hedge until stats exist). ``delay`` fixes it.
    ``stats`` is the registry both are read from (default: this policy's own; an
    ``AiOrchestration`` passes its own, which its voice calls feed).
    """

    quantile: float = 0.95
    min_samples: int = 20
    default_delay: float | None = None
    delay: float | None = None
    min_delay: float = 0.0
    stats: StatsRegistry = field(default_factory=StatsRegistry, compare=False)
    stats_key: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")
        for v in (self.default_delay, self.delay):
            if v is not None and v < 0:
                raise ValueError("hedge delays must be >= 0")

    def attempt_key(self, voice: str) -> str:
        return self.stats_key or f"{voice}/attempt"

    def delay_for(self, voice: str) -> float | None:
        return self.delay_from((self.attempt_key(voice), voice))

    def delay_from(self, keys: tuple[str, str]) -> float | None:
        """``delay_for`` with the (attempt, whole-call) statistics keys already made."""
        if self.delay is not None:
            return self.delay
        for key in keys:
            st = self.stats.get(key)
            if st is not None and st.window_calls >= self.min_samples:
                q = st.quantile(self.quantile)
                return None if q is None else max(self.min_delay, q)
        return self.default_delay

    def wrap(self, voice: Voice) -> Voice:
        return PolicyVoice(voice, Hedging(self, (self.attempt_key(voice.name), voice.name)))


class _Race:
    __slots__ = (
        "call", "context", "error", "hedge", "main", "phase", "record", "request", "result",
    )  # fmt: skip

    def __init__(
        self,
        call: VoiceCall,
        request: VoiceRequest,
        main: asyncio.Task[object],
        record: Callable[[float], None],
    ) -> None:
        self.call, self.request, self.main, self.record = call, request, main, record
        # The shared alarm timer runs in whichever context armed it: keep the caller's.
        self.context = contextvars.copy_context()
        self.hedge: asyncio.Task[None] | None = None
        self.phase = "first"  # first -> hedge-won | waiting-hedge | done
        self.result: VoiceResponse | None = None
        self.error: BaseException | None = None

    def launch(self) -> None:
        if self.phase == "first":
            loop = asyncio.get_running_loop()
            self.hedge = loop.create_task(self._run(), context=self.context)

    async def _run(self) -> None:
        started = asyncio.get_running_loop().time()
        try:
            self.result = await self.call(self.request)
        except Exception as exc:
            self.error = exc
            return
        self.record(asyncio.get_running_loop().time() - started)
        if self.phase == "first":
            self.phase = "hedge-won"
            self.main.cancel()


@dataclass(frozen=True, slots=True)
class Hedging:
    """``HedgePolicy`` as voice middleware; ``keys`` are the voice's statistics keys
    (per attempt, whole call), made once."""

    policy: HedgePolicy
    keys: tuple[str, str]

    def _record(self, latency_s: float) -> None:
        self.policy.stats.record(self.keys[0], latency_s)

    async def __call__(self, request: VoiceRequest, call_next: VoiceCall) -> VoiceResponse:
        delay = self.policy.delay_from(self.keys)
        main = asyncio.current_task()
        reg = alarms()
        started = reg.loop.time()
        if delay is None or main is None:
            response = await call_next(request)
            self._record(reg.loop.time() - started)
            return response
        race = _Race(call_next, request, main, self._record)
        cancelling = main.cancelling()
        timer = reg.add(started + delay, race.launch)
        try:
            return await self._first(race, cancelling, started)
        finally:
            timer.cancel()
            race.phase = "done"
            if race.hedge is not None:
                race.hedge.cancel()
                await asyncio.wait((race.hedge,))

    async def _first(self, race: _Race, cancelling: int, started: float) -> VoiceResponse:
        try:
            response = await race.call(race.request)
        except asyncio.CancelledError:
            if race.phase == "hedge-won" and race.main.uncancel() <= cancelling:
                note("hedge", "hedge won")
                assert race.result is not None
                return race.result
            raise
        except Exception:
            if race.phase == "hedge-won":  # the cancelled first raised something else
                race.main.uncancel()
                note("hedge", "hedge won")
                assert race.result is not None
                return race.result
            if race.hedge is None:
                raise
            race.phase = "waiting-hedge"
            note("hedge", "first failed; waiting for the hedge")
            await asyncio.wait((race.hedge,))
            if race.result is None:
                raise
            return race.result
        if race.phase == "hedge-won":  # the first answered although cancelled: keep it
            race.main.uncancel()
        race.record(asyncio.get_running_loop().time() - started)
        if race.hedge is not None:
            note("hedge", "first won")
        return response
