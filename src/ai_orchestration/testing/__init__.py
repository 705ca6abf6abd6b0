"""Test support shipped with the library: fake voices, network guard, cassettes, faults."""

from ai_orchestration.errors import CassetteMissError, NetworkBlockedError
from ai_orchestration.policies._clock import FakeClock
from ai_orchestration.testing._cassette import (
    Cassette,
    CassetteVoice,
    network_guard,
    request_fingerprint,
)
from ai_orchestration.testing._fakes import FunctionVoice, ScriptedVoice, SeededVoice
from ai_orchestration.testing._faults import GARBAGE_TEXTS, Faults, FaultyVoice, Latency

__all__ = [
    "GARBAGE_TEXTS",
    "Cassette",
    "CassetteMissError",
    "CassetteVoice",
    "FakeClock",
    "Faults",
    "FaultyVoice",
    "FunctionVoice",
    "Latency",
    "NetworkBlockedError",
    "ScriptedVoice",
    "SeededVoice",
    "network_guard",
    "request_fingerprint",
]
