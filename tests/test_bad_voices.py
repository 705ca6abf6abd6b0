"""One bad voice must not sink the run: a malformed answer is that voice's failed vote."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.tracing import SpanKind, SpanStatus
from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse


class RawVoice:
    """Returns whatever it is given, unchecked (``FunctionVoice`` would wrap a str)."""

    def __init__(self, name: str, out: Any) -> None:
        self._name, self.out = name, out

    @property
    def name(self) -> str:
        return self._name

    async def respond(self, request: VoiceRequest) -> Any:
        if isinstance(self.out, BaseException):
            raise self.out
        return self.out


def _system(tmp_path: Path, bad: Any, method: str = "majority") -> AiOrchestration:
    voices = [FunctionVoice("a", lambda r: "Paris"), FunctionVoice("b", lambda r: "Paris"), bad]
    cfg = {
        "state_dir": str(tmp_path / "state"),
        "consensus": {"method": method, "embed": "none"},
    }
    return AiOrchestration(cfg, voices=voices)


def _answer(text: str, **kw: Any) -> VoiceResponse:
    return VoiceResponse(text=text, usage=Usage(calls=1), **kw)


BAD_ANSWERS = [
    ("nan confidence", _answer("Lyon", confidence=math.nan), "confidence nan is not in [0, 1]"),
    ("confidence 1.5", _answer("Lyon", confidence=1.5), "confidence 1.5 is not in [0, 1]"),
    (
        "nan distribution",
        _answer("Lyon", distribution={"Lyon": math.nan, "Paris": 0.5}),
        "distribution {'Lyon': nan, 'Paris': 0.5} is not probabilities in [0, 1]",
    ),
    ("None", None, "returned None, not a VoiceResponse"),
    ("a dict", {"text": "Lyon"}, "returned a dict, not a VoiceResponse"),
    ("a text that is not a str", _answer(42), "response text is a int, not a str"),  # type: ignore[arg-type]
    ("its own CancelledError", asyncio.CancelledError(), "raised CancelledError without being"),
]


@pytest.mark.parametrize("method", ["majority", "bayesian"])
@pytest.mark.parametrize(("case", "out", "reason"), BAD_ANSWERS, ids=[c[0] for c in BAD_ANSWERS])
def test_a_malformed_answer_is_that_voices_failed_vote(
    tmp_path: Path, method: str, case: str, out: Any, reason: str
) -> None:
    with _system(tmp_path, RawVoice("bad", out), method) as system:
        result = system.process({"prompt": "Capital of France?", "choices": ["Paris", "Lyon"]})
    assert result.answer == "Paris"
    votes = {v.voice: v for v in result.votes}
    assert sorted(votes) == ["a", "b", "bad"]  # the bad voice's vote is there, not lost
    assert votes["bad"].answer is None
    assert votes["bad"].error is not None and votes["bad"].error.startswith("voice 'bad': ")
    assert reason in votes["bad"].error
    assert result.consensus.explanation["failed"] == {"bad": votes["bad"].error}
    span = next(s for s in result.trace.spans if s.kind is SpanKind.VOICE and s.name == "bad")
    assert span.status is SpanStatus.ERROR and span.error is not None and reason in span.error
    assert {v.voice for v in result.votes if v.ok} == {"a", "b"}


async def test_the_good_voices_are_not_cancelled_by_a_bad_one(tmp_path: Path) -> None:
    slow = FunctionVoice("slow", lambda r: "Paris", delay=0.05)
    cfg = {"state_dir": str(tmp_path / "s"), "consensus": {"method": "majority", "embed": "none"}}
    with AiOrchestration(cfg, voices=[slow, RawVoice("none", None)]) as system:
        result = await system.aprocess("Capital of France?")
    assert result.answer == "Paris"
    slow_span = next(s for s in result.trace.spans if s.name == "slow")
    assert slow_span.status is SpanStatus.OK


def test_numpy_probabilities_are_well_formed(tmp_path: Path) -> None:
    import numpy as np

    good = _answer("Paris", confidence=np.float32(0.75), distribution={"Paris": np.float32(0.75)})
    with _system(tmp_path, RawVoice("numpy", good)) as system:
        result = system.process({"prompt": "Capital of France?", "choices": ["Paris", "Lyon"]})
    assert all(v.ok for v in result.votes) and result.answer == "Paris"
