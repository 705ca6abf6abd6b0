"""Execution: what runs a workflow. Today: the one join state machine (``_join``), the
``StepContext`` step bodies are given (``_context``), and the output codec every recorded value
goes through (:func:`encode`/:func:`decode`, :func:`register_type` for your own types); the
scheduler and step bodies move here in the layout move still to come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_orchestration._lazy import lazy_exports

if TYPE_CHECKING:
    from ai_orchestration.engine._codec import (
        decode,
        encode,
        from_data,
        register_type,
        to_data,
    )

# The codec (base64, orjson tagging) loads on first use: the scheduler imports this package.
__getattr__ = lazy_exports(
    __name__,
    dict.fromkeys(
        ("decode", "encode", "from_data", "register_type", "to_data"),
        "ai_orchestration.engine._codec",
    ),
)

__all__ = ["decode", "encode", "from_data", "register_type", "to_data"]
