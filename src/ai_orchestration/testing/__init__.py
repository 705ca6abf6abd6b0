"""Test support shipped with the library: fake voices, network guard, cassettes, faults."""

from ai_orchestration.policies._clock import FakeClock
from ai_orchestration.testing._fakes import FunctionVoice, ScriptedVoice, SeededVoice
from ai_orchestration.testing._faults import GARBAGE_TEXTS, Faults, FaultyVoice, Latency

__all__ = [
    "GARBAGE_TEXTS",
    "FakeClock",
    "Faults",
    "FaultyVoice",
    "FunctionVoice",
    "Latency",
    "ScriptedVoice",
    "SeededVoice",
]
