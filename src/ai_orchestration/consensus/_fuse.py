"""Per-request fusion entry point (placeholder majority; the consensus work replaces it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from ai_orchestration.consensus._types import Consensus, Vote
from ai_orchestration.errors import ConsensusError

__all__ = ["fuse"]


def fuse(
    votes: Iterable[Vote],
    *,
    method: str = "majority",
    reliability: Mapping[str, float] | None = None,
) -> Consensus:
    """Fuse one request's votes into a ``Consensus``."""
    all_votes = tuple(votes)
    valid = [v for v in all_votes if v.ok and v.answer is not None]
    if not valid:
        raise ConsensusError(f"no valid votes to fuse ({len(all_votes)} voices failed)")
    counts = Counter(str(v.answer) for v in valid)
    answer, top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    dist = {a: c / len(valid) for a, c in counts.items()}
    return Consensus(
        answer=answer,
        confidence=dist[answer],
        distribution=dist,
        weights={v.voice: 1.0 for v in valid},
        agreement=top / len(valid),
        method=method,
        votes=all_votes,
    )
