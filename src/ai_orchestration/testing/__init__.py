"""Test support shipped with the library: fake voices, network guard, cassettes, faults,
and the conformance suite every Store passes."""

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
from ai_orchestration.testing.store_conformance import STORE_CHECKS, check_store

__all__ = [
    "GARBAGE_TEXTS",
    "STORE_CHECKS",
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
    "check_store",
    "network_guard",
    "request_fingerprint",
]
