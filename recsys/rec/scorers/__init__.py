"""The scorer registry: `RecommendConfig.scorer` -> the `Scorer` that makes the list.

Every scorer is one module behind one interface (`recsys.rec.scorers.base`); this registry is
the one place that maps a name to it. Adding a scorer = one module + one
line in `_SCORERS` (`seq`: the learned sequence policy, `recsys.rec.scorers.seq`).
"""

from __future__ import annotations

from recsys.errors import UnknownScorerError
from recsys.rec.scorers.base import LoggedDecision, Outcome, Pool, Scorer, WarmRequest
from recsys.rec.scorers.blend import BlendScorer
from recsys.rec.scorers.items import ItemsScorer
from recsys.rec.scorers.seq import SeqScorer

__all__ = [
    "LoggedDecision",
    "Outcome",
    "Pool",
    "Scorer",
    "WarmRequest",
    "get_scorer",
    "scorer_names",
]

_SCORERS: dict[str, Scorer] = {s.name: s for s in (BlendScorer(), ItemsScorer(), SeqScorer())}
"""name -> the shared (stateless) instance."""


def scorer_names() -> tuple[str, ...]:
    """The registered scorer names, sorted."""
    return tuple(sorted(_SCORERS))


def get_scorer(name: str) -> Scorer:
    """The scorer registered as `name`; raises `UnknownScorerError` listing the known ones."""
    try:
        return _SCORERS[name]
    except KeyError:
        known = ", ".join(scorer_names())
        raise UnknownScorerError(f"unknown scorer {name!r}; known scorers: {known}") from None
