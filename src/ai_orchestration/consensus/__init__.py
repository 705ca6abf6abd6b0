"""Consensus: fuse many voices' answers into one answer with a calibrated confidence.

Per request: :func:`fuse`. In batch (crowd-kit-like ``fit``/``predict``/``predict_proba``):
:class:`MajorityVote`, :class:`WeightedVote`, :class:`BayesianFusion`,
:class:`AttentionFusion`, :class:`LogPool`, :class:`DempsterShafer`. Online reliability:
:class:`ReliabilityTracker`. Adaptive ensembles: :func:`decide`, :func:`should_stop`,
:func:`order_voices`. Free text: :func:`normalise`, :func:`cluster`.
"""

from ai_orchestration.consensus._adaptive import StopDecision, decide, order_voices, should_stop
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
    normalise,
)
from ai_orchestration.consensus._types import Consensus, Vote

__all__ = [
    "DEFAULT_THRESHOLD",
    "METHODS",
    "Aggregator",
    "AttentionFusion",
    "BayesianFusion",
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
    "fit_temperature",
    "fuse",
    "normalise",
    "order_voices",
    "should_stop",
]
