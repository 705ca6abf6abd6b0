"""Consensus: fuse many voices' answers into one answer with a calibrated confidence.

Per request: :func:`fuse`. In batch (crowd-kit-like ``fit``/``predict``/``predict_proba``):
:class:`MajorityVote`, :class:`WeightedVote`, :class:`BayesianFusion`,
:class:`AttentionFusion`, :class:`LogPool`, :class:`DempsterShafer`. Online reliability:
:class:`ReliabilityTracker`. Adaptive ensembles: :func:`decide`, :func:`should_stop`,
:func:`order_voices`, :func:`redundant_pairs`. Free text: :func:`normalise`, :func:`cluster`,
:func:`echoes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai_orchestration._lazy import lazy_exports
from ai_orchestration.consensus._types import Consensus, Vote

if TYPE_CHECKING:
    from ai_orchestration.consensus._adaptive import (
        ConfusionModel,
        StopDecision,
        decide,
        order_voices,
        redundant_pairs,
        should_stop,
    )
    from ai_orchestration.consensus._aggregators import (
        AttentionFusion,
        DempsterShafer,
        LogPool,
        MajorityVote,
        WeightedVote,
    )
    from ai_orchestration.consensus._base import Aggregator
    from ai_orchestration.consensus._bayes import BayesianFusion
    from ai_orchestration.consensus._calibration import calibration_report, fit_temperature
    from ai_orchestration.consensus._fuse import METHODS, fuse
    from ai_orchestration.consensus._reliability import ReliabilityTracker
    from ai_orchestration.consensus._text import (
        DEFAULT_THRESHOLD,
        calibrate_threshold,
        cluster,
        compatible,
        echoes,
        normalise,
    )

# numpy-backed parts load on first use: ``import ai_orchestration`` must stay fast.
_LAZY: dict[str, str] = {
    "Aggregator": "ai_orchestration.consensus._base",
    "AttentionFusion": "ai_orchestration.consensus._aggregators",
    "BayesianFusion": "ai_orchestration.consensus._bayes",
    "ConfusionModel": "ai_orchestration.consensus._adaptive",
    "DEFAULT_THRESHOLD": "ai_orchestration.consensus._text",
    "DempsterShafer": "ai_orchestration.consensus._aggregators",
    "LogPool": "ai_orchestration.consensus._aggregators",
    "METHODS": "ai_orchestration.consensus._fuse",
    "MajorityVote": "ai_orchestration.consensus._aggregators",
    "ReliabilityTracker": "ai_orchestration.consensus._reliability",
    "StopDecision": "ai_orchestration.consensus._adaptive",
    "WeightedVote": "ai_orchestration.consensus._aggregators",
    "calibrate_threshold": "ai_orchestration.consensus._text",
    "calibration_report": "ai_orchestration.consensus._calibration",
    "cluster": "ai_orchestration.consensus._text",
    "compatible": "ai_orchestration.consensus._text",
    "echoes": "ai_orchestration.consensus._text",
    "decide": "ai_orchestration.consensus._adaptive",
    "fit_temperature": "ai_orchestration.consensus._calibration",
    "fuse": "ai_orchestration.consensus._fuse",
    "normalise": "ai_orchestration.consensus._text",
    "order_voices": "ai_orchestration.consensus._adaptive",
    "redundant_pairs": "ai_orchestration.consensus._adaptive",
    "should_stop": "ai_orchestration.consensus._adaptive",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DEFAULT_THRESHOLD",
    "METHODS",
    "Aggregator",
    "AttentionFusion",
    "BayesianFusion",
    "ConfusionModel",
    "Consensus",
    "DempsterShafer",
    "LogPool",
    "MajorityVote",
    "ReliabilityTracker",
    "StopDecision",
    "Vote",
    "WeightedVote",
    "calibrate_threshold",
    "calibration_report",
    "cluster",
    "compatible",
    "decide",
    "echoes",
    "fit_temperature",
    "fuse",
    "normalise",
    "order_voices",
    "redundant_pairs",
    "should_stop",
]
