"""The scorer registry (`recsys.rec.scorers`): names, clear errors, scorer-dependent settings."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import BlendConfig, CaseBankConfig, RecommendConfig, StateConfig
from recsys.errors import UnknownScorerError
from recsys.memory.case_bank import CaseBank
from recsys.rec.item_features import ITEM_FEATURES
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.recommender import Recommender
from recsys.rec.scorers import get_scorer, scorer_names
from recsys.records import CASE_FEATURES


def test_unknown_scorer_names_the_known_ones() -> None:
    """Looking up an unregistered scorer raises `UnknownScorerError` listing every known one."""
    with pytest.raises(UnknownScorerError, match=r"'sequence'.*known scorers: blend, items"):
        get_scorer("sequence")


def test_recommender_with_an_unknown_scorer_fails_at_construction() -> None:
    """A pipeline configured with an unregistered scorer fails when built, not at the first
    request, with the same message."""
    items = ItemTable(["a"], ["a"], np.ones((1, 4), np.float32))
    bank = CaseBank(CaseBankConfig(), 4)
    cfg = RecommendConfig(scorer="sequence")  # type: ignore[arg-type]
    with pytest.raises(UnknownScorerError, match="known scorers: blend, items, seq"):
        Recommender(cfg, StateConfig(), items, bank, Popularity(1), None)


def test_every_registered_scorer_is_found_under_its_name() -> None:
    """The registry key of each scorer is the name it declares, and its log kind is unique."""
    names = scorer_names()
    assert names == ("blend", "items", "seq")
    assert all(get_scorer(n).name == n for n in names)
    assert len({get_scorer(n).log_kind for n in names}) == len(names)


def test_scorer_dependent_settings_are_the_scorer_s() -> None:
    """Feature width, listwise weight, vectors and co-occurrence follow the scorer: the blend
    sees the case features and never trains listwise; the items scorer sees the item evidence
    and takes the configured item settings."""
    blend, items = get_scorer("blend"), get_scorer("items")
    assert blend.feature_width == len(CASE_FEATURES) == 4
    assert items.feature_width == len(ITEM_FEATURES)
    assert (blend.listwise_weight(0.7), items.listwise_weight(0.7)) == (0.0, 0.7)
    assert (blend.use_vectors(False), items.use_vectors(False)) == (True, False)
    assert not blend.chooses_items and items.chooses_items
    assert not blend.needs_cooccurrence(BlendConfig(w_knn=0.0))
    assert blend.needs_cooccurrence(BlendConfig(w_knn=0.5))
    assert items.needs_cooccurrence(BlendConfig(w_knn=0.0))
