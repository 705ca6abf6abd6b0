"""Online reliability: Beta counts, neutral prior, atomic JSON persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_orchestration.consensus import ReliabilityTracker, Vote
from ai_orchestration.errors import InputError, StoreError


def test_counts_and_posterior_mean(tmp_path: Path) -> None:
    path = tmp_path / "state" / "reliability.json"
    tracker = ReliabilityTracker(path)
    assert tracker.reliability() == {} and not tracker.has_history("a")
    tracker.update([Vote("a", "Paris"), Vote("b", "Lyon"), Vote("c", None, error="x")], "paris")
    tracker.update([Vote("a", "PARIS")], "Paris")
    # a: 2 right -> (2+2)/(2+3) = 0.8; b: 1 wrong -> 2/4 = 0.5; c failed: no history
    assert tracker.reliability() == pytest.approx({"a": 0.8, "b": 0.5})
    assert tracker.has_history("a") and not tracker.has_history("c")
    assert sorted(p.name for p in path.parent.iterdir()) == ["reliability.json"]
    saved = json.loads(path.read_text())
    assert saved["voices"]["a"] == {"correct": 2.0, "wrong": 0.0}


def test_reloads_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    ReliabilityTracker(path).update([Vote("a", 1)], 1)
    assert ReliabilityTracker(path).reliability() == pytest.approx({"a": 0.75})


def test_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(StoreError, match=r"r\.json is unreadable"):
        ReliabilityTracker(path)


def test_bad_prior() -> None:
    with pytest.raises(InputError, match="positive"):
        ReliabilityTracker(prior=(0.0, 1.0))
