"""The public export list is complete and every name resolves (lazily, without numpy first)."""

from __future__ import annotations

import ai_orchestration.consensus as consensus


def test_all_names_resolve_and_match_the_lazy_table() -> None:
    for name in consensus.__all__:
        assert getattr(consensus, name) is not None
    assert set(consensus.__all__) == set(consensus._LAZY) | {"Consensus", "Vote"}
