"""What a voice *is*, apart from the name a user gave it: provider, model and endpoint.

Circuits and rate limits follow the thing that fails or throttles — a model at an endpoint —
so they are keyed by identity, never by the user-chosen name (two configurations may each
call a different model ``a``).

>>> VoiceIdentity("openai", "gpt-4o", "https://api.openai.com/v1").key
'openai:gpt-4o@https://api.openai.com/v1'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["VoiceIdentity", "identity_of"]


@dataclass(frozen=True, slots=True)
class VoiceIdentity:
    """Provider, model and endpoint (an URL without credentials, a model file, or "")."""

    provider: str
    model: str
    endpoint: str = ""

    @property
    def key(self) -> str:
        """``provider:model@endpoint``; without a provider just the model, without an
        endpoint no ``@`` part."""
        head = f"{self.provider}:{self.model}" if self.provider else self.model
        return f"{head}@{self.endpoint}" if self.endpoint else head


def identity_of(voice: Any) -> VoiceIdentity:
    """The voice's declared ``identity``; a voice declaring none is known by its name alone."""
    found = getattr(voice, "identity", None)
    if isinstance(found, VoiceIdentity):
        return found
    return VoiceIdentity("", str(voice.name))
