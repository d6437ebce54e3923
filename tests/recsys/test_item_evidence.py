"""Item evidence of the retrieved cases (`recsys.rec.item_features`): weights by similarity and
age, a position-corrected reward rate and an exposure count, against hand-computed numbers;
co-occurrence counts with per-event weights (the online half-life)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.rec.cooccurrence import Cooccurrence, LiveCooccurrence
from recsys.rec.item_features import (
    ITEM_FEATURES,
    ItemEvidence,
    case_sums,
    case_vote,
    item_feature_matrix,
)

COL = {name: k for k, name in enumerate(ITEM_FEATURES)}


def _evidence(**kw: object) -> ItemEvidence:
    """Three catalogue items; cases 0 and 1 propose item 0, case 2 proposes item 1."""
    n = 3
    base: dict[str, object] = dict(
        nb_sim=np.zeros(n),
        pop=np.zeros(n),
        knn=np.zeros(n),
        knn_last=np.zeros(n),
        nxt=np.zeros(n),
        seen_count={},
        seen_last_ts={},
        last_vec=None,
        case_rows=[(0,), (0,), (1,)],
        case_sims=np.array([0.8, 0.6, 0.5]),
        case_rewards=np.array([1.0, 0.0, 0.0]),
        case_ids=np.array([10, 11, 12]),
    )
    return ItemEvidence(**{**base, **kw})  # type: ignore[arg-type]


def _feats(ev: ItemEvidence) -> np.ndarray:
    vecs = np.eye(3, dtype=np.float32)
    cands, _ = item_feature_matrix([0, 1, 2], ev, vecs, now=0.0)
    return cands.features.astype(np.float64)


def test_click_rate_is_weighted_by_similarity_and_age_and_corrected_for_position() -> None:
    """Item 0: a click at position 0 (sim 0.8, new) and an ignored showing at position 3 (sim
    0.6, one half-life old): rate = 0.8 / (0.8 + 0.3 / log2(5)); votes share the weights."""
    ev = _evidence(
        case_age_hours=np.array([0.0, 6.0, 0.0]),
        case_positions=np.array([0, 3, 1]),
        half_life_hours=6.0,
    )
    f = _feats(ev)
    w = np.array([0.8, 0.3, 0.5])
    assert f[0, COL["case_outcome"]] == pytest.approx(0.8 / (0.8 + 0.3 / math.log2(5)), rel=1e-6)
    assert f[0, COL["case_votes"]] == pytest.approx((w[0] + w[1]) / w.sum(), rel=1e-6)
    assert f[1, COL["case_votes"]] == pytest.approx(w[2] / w.sum(), rel=1e-6)
    assert f[0, COL["case_max_sim"]] == pytest.approx(0.8, rel=1e-6)


def test_unknown_is_not_bad_the_exposure_count_tells_them_apart() -> None:
    """Item 1 was shown and ignored (rate 0, one exposure); item 2 was never shown (rate 0,
    no exposure): the count separates them."""
    f = _feats(_evidence(case_positions=np.array([0, 3, 1])))
    assert f[1, COL["case_outcome"]] == 0.0 and f[2, COL["case_outcome"]] == 0.0
    assert f[1, COL["case_log_count"]] == pytest.approx(math.log1p(1), rel=1e-6)
    assert f[2, COL["case_log_count"]] == 0.0
    assert f[0, COL["case_log_count"]] == pytest.approx(math.log1p(2), rel=1e-6)


def test_without_ages_or_positions_the_rate_is_the_similarity_weighted_mean_reward() -> None:
    """No half-life and no positions (offline replay's cases): the similarity-weighted mean of
    the rewards, as before the position correction."""
    f = _feats(_evidence(case_age_hours=np.array([100.0, 0.0, 0.0])))
    assert f[0, COL["case_outcome"]] == pytest.approx(0.8 / (0.8 + 0.6), rel=1e-6)


def test_the_case_vote_shrinks_each_rate_towards_the_pooled_rate() -> None:
    """Positions 0, 3, 1: item 0 has reward 0.8 over exposure e0 = 0.8 + 0.6 / log2(5), item
    1 none over 0.5 / log2(3), item 2 no case: each vote is (reward + r0) / (exposure + 1) with
    r0 = 0.8 / (e0 + e1), and the unproposed item gets r0 itself."""
    ev = _evidence(case_positions=np.array([0, 3, 1]))
    e0, e1 = 0.8 + 0.6 / math.log2(5), 0.5 / math.log2(3)
    r0 = 0.8 / (e0 + e1)
    vote = case_vote(case_sums([0, 1, 2], ev), prior=1.0)
    assert vote == pytest.approx([(0.8 + r0) / (e0 + 1), r0 / (e1 + 1), r0], rel=1e-6)
    assert vote[0] > vote[2] > vote[1]


def test_cooccurrence_weights_cap_each_user_item_at_one_and_weight_successions() -> None:
    """Weights: user a holds items 0 (0.25 + 0.5) and 1 (1.0), user b holds 0 (1.0) and 2
    (0.5): co[0, 1] = 0.75, co[0, 2] = 0.5, support[0] = 1.75; a's succession 0 -> 1 counts
    1.0, and b's 0 -> 2 counts 0.5."""
    users = np.array(["a", "a", "a", "b", "b"])
    rows = np.array([0, 0, 1, 0, 2])
    w = np.array([0.25, 0.5, 1.0, 1.0, 0.5])
    c = Cooccurrence.fit(users, rows, 3, w)
    co = c.co.toarray()
    assert co[0, 1] == pytest.approx(0.75) and co[0, 2] == pytest.approx(0.5)
    assert c.support.tolist() == pytest.approx([1.75, 1.0, 0.5])
    assert c.succ is not None
    assert c.succ[0, 1] == pytest.approx(1.0) and c.succ[0, 2] == pytest.approx(0.5)
    plain = Cooccurrence.fit(users, rows, 3)
    assert plain.co.toarray()[0, 1] == 1.0 and plain.support.tolist() == [2.0, 1.0, 1.0]


def test_live_cooccurrence_with_a_half_life_counts_old_events_less() -> None:
    """Two users took items 0 and 1 a half-life ago, one took 0 and 2 now: with a 1 h
    half-life a pair counts the product of its weights, co[0, 1] = 2 x 0.5 x 0.5 = 0.5 and
    co[0, 2] = 1.0; without, 2 and 1."""
    events = [("u", 0, 0.0), ("u", 1, 0.0), ("v", 0, 0.0), ("v", 1, 0.0)]
    events += [("w", 0, 3600.0), ("w", 2, 3600.0)]
    got = {}
    for h in (0.0, 1.0):
        live = LiveCooccurrence(None, 3, refit_every=10_000, half_life_hours=h)
        for user, row, t in events:
            live.add(user, [row], [t], refit=False)
        got[h] = live.refit().co.toarray()
    assert got[0.0][0, 1] == 2.0 and got[0.0][0, 2] == 1.0
    assert got[1.0][0, 1] == pytest.approx(0.5) and got[1.0][0, 2] == pytest.approx(1.0)
