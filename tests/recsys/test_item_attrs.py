"""Attribute affinity (`recsys.rec.item_attrs`): a user's decayed share of events per
`key=value` title word and each item's largest and mean affinity, against hand-computed
numbers, and the two item-feature columns they fill."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.rec.item_attrs import ItemAttributes, attribute_words
from recsys.rec.item_features import ITEM_FEATURES, ItemEvidence, item_feature_matrix

TITLES = ["red shoe cat=1 brand=a", "cat=1 brand=b", "cat=2 brand=b", "plain title"]


def test_attribute_words_are_the_key_value_words() -> None:
    """Only `key=value` words are attributes, in title order."""
    assert attribute_words("red shoe cat=1 brand=a") == ["cat=1", "brand=a"]
    assert attribute_words("plain title") == []


def test_affinity_weights_recent_events_more() -> None:
    """Events on items 2 then 0 (newest first, decay 0.5): weights 1 and 0.5 of 1.5, so cat=2
    and brand=b 2/3, cat=1 and brand=a 1/3; item 1 (cat=1, brand=b) gets max 2/3, mean 1/2;
    the item without attributes 0."""
    attrs = ItemAttributes(TITLES)
    aff = attrs.affinity([2, 0], decay=0.5)
    f = attrs.features([0, 1, 2, 3], aff)
    np.testing.assert_allclose(f[0], [1 / 3, 1 / 3])
    np.testing.assert_allclose(f[1], [2 / 3, 0.5])
    np.testing.assert_allclose(f[2], [2 / 3, 2 / 3])
    np.testing.assert_allclose(f[3], [0.0, 0.0])


def test_no_history_gives_zero_affinity() -> None:
    """A user without events has no affinity for anything."""
    attrs = ItemAttributes(TITLES)
    assert not attrs.features([0, 1], attrs.affinity([])).any()


def test_the_feature_columns_carry_the_affinity() -> None:
    """`item_feature_matrix` writes the largest and mean affinity in `attr_max`/`attr_mean`."""
    attrs = ItemAttributes(TITLES)
    n = len(TITLES)
    ev = ItemEvidence(
        nb_sim=np.zeros(n), pop=np.zeros(n), knn=np.zeros(n), knn_last=np.zeros(n),
        nxt=np.zeros(n), seen_count={}, seen_last_ts={}, last_vec=None, case_rows=[],
        case_sims=np.zeros(0), case_rewards=np.zeros(0), case_ids=np.zeros(0, np.int64),
        attributes=attrs, affinity=attrs.affinity([2, 0], decay=0.5),
    )  # fmt: skip
    cands, _ = item_feature_matrix([1, 3], ev, np.eye(n, dtype=np.float32), now=0.0)
    col = {name: k for k, name in enumerate(ITEM_FEATURES)}
    assert cands.features[0, col["attr_max"]] == pytest.approx(2 / 3)
    assert cands.features[0, col["attr_mean"]] == pytest.approx(0.5)
    assert cands.features[1, col["attr_max"]] == 0.0
