"""The public export list is complete and every name resolves."""

from __future__ import annotations

import ai_orchestration.consensus as consensus


def test_all_names_resolve_and_public_classes_are_exported() -> None:
    for name in consensus.__all__:
        assert getattr(consensus, name) is not None
    public = {n for n in dir(consensus) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(consensus.__all__)
