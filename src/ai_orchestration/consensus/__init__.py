"""Consensus: fuse many voices' answers into one answer with a calibrated confidence."""

from ai_orchestration.consensus._fuse import fuse
from ai_orchestration.consensus._types import Consensus, Vote

__all__ = ["Consensus", "Vote", "fuse"]
