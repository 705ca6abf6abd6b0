"""Fixtures for the provider wire-format tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key in the environment, whatever the developer's shell has."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
