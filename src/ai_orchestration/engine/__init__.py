"""Execution: what runs a workflow. For now the output codec every recorded value goes
through (:func:`encode`/:func:`decode`, :func:`register_type` for your own types); the
scheduler, joins and step bodies move here in the engine-room work.
"""

from __future__ import annotations

from ai_orchestration.engine._codec import decode, encode, from_data, register_type, to_data

__all__ = ["decode", "encode", "from_data", "register_type", "to_data"]
