"""Test support shipped with the library: fake voices, network guard, cassettes, faults."""

from ai_orchestration.testing._fakes import FunctionVoice, ScriptedVoice, SeededVoice

__all__ = ["FunctionVoice", "ScriptedVoice", "SeededVoice"]
