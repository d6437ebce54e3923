"""The slotted explorer (`recsys.rl.slotted`): SquareCB's probabilities by hand, greedy slots
in score order, exploration-slot frequencies against SquareCB, exact logged propensities, and
the learner's two list draws."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import LearnerConfig, PolicyConfig
from recsys.rec.request import RecResult
from recsys.records import UserState
from recsys.rl.learner import Learner
from recsys.rl.policy import logged_propensities
from recsys.rl.slotted import (
    ExploreWindow,
    exploration_slots,
    slotted_draw,
    squarecb_gamma,
    squarecb_probs,
)
from tests.recsys.test_learner_core import D, _cands


def _learner(**policy: object) -> Learner:
    cfg = LearnerConfig(min_replay=1, batch_size=8, policy=PolicyConfig(**policy))  # type: ignore[arg-type]
    return Learner(cfg, D, D)


def test_squarecb_probabilities_match_the_hand_computed_case() -> None:
    """A = 3, gamma = 2, scores (1, 0.5, 0): the others get 1/(3+1) and 1/(3+2), the greedy
    item the rest (0.55); gamma 0 is uniform."""
    p = squarecb_probs(np.array([1.0, 0.5, 0.0]), 2.0, 0)
    assert p == pytest.approx([0.55, 0.25, 0.2])
    assert squarecb_probs(np.array([1.0, 0.5, 0.0]), 0.0, 0) == pytest.approx([1 / 3] * 3)
    assert squarecb_gamma(10.0, 100) == pytest.approx(100.0)


def test_exploration_slots_are_position_zero_and_the_tail() -> None:
    """Two slots of five: positions 0 and 4; none with 0 slots; all when the slots cover m."""
    assert exploration_slots(5, 2).tolist() == [True, False, False, False, True]
    assert exploration_slots(5, 3).tolist() == [True, False, False, True, True]
    assert not exploration_slots(5, 0).any() and exploration_slots(3, 9).all()
    assert exploration_slots(1, 2).tolist() == [True]


def test_greedy_slots_keep_the_score_order() -> None:
    """Every greedy slot holds the best candidate not placed above it, masked rows never
    appear, and the greedy slots' propensities are exactly 1."""
    rng = np.random.default_rng(3)
    for trial in range(200):
        k = int(rng.integers(4, 12))
        score = rng.normal(size=k)
        mask = rng.random(k) < 0.8
        mask[:3] = True
        m = int(rng.integers(1, mask.sum() + 1))
        ids = np.arange(k)
        d = slotted_draw(score, mask, ids, m, 2, float(rng.uniform(0, 50)), rng)
        assert len(set(d.indices.tolist())) == m and mask[d.indices].all(), trial
        for j in np.flatnonzero(~d.explored):
            left = [i for i in np.flatnonzero(mask) if i not in d.indices[:j]]
            assert score[d.indices[j]] == max(score[left]), (trial, j)
            assert d.pscores[j] == 1.0
        greedy = [score[i] for i in d.indices[~d.explored]]
        assert greedy == sorted(greedy, reverse=True), trial


def test_exploration_slot_frequencies_match_squarecb() -> None:
    """Over 20,000 seeded draws, position 0 and the last exploration slot hold each item as
    often as SquareCB's probabilities over the items not yet placed say (within 0.015)."""
    score = np.array([0.9, 0.7, 0.65, 0.2, 0.0])
    mask, ids, gamma, draws = np.ones(5, bool), np.arange(5), 8.0, 20_000
    rng = np.random.default_rng(0)
    first = np.zeros(5)
    last_given_greedy_top = np.zeros(5)  # the last slot when position 0 took the greedy item
    n_top = 0
    for _ in range(draws):
        d = slotted_draw(score, mask, ids, 3, 2, gamma, rng)
        first[d.indices[0]] += 1
        if d.indices[0] == 0:
            n_top += 1
            last_given_greedy_top[d.indices[2]] += 1
    p0 = squarecb_probs(score, gamma, 0)
    assert first / draws == pytest.approx(p0, abs=0.015)
    # after items 0 (explored) and 1 (greedy), slot 2 draws over items 2, 3, 4
    p2 = squarecb_probs(score[2:], gamma, 0)
    assert last_given_greedy_top[2:] / n_top == pytest.approx(p2, abs=0.015)
    assert last_given_greedy_top[:2].sum() == 0


def test_logged_position_zero_propensity_is_the_exact_squarecb_probability() -> None:
    """A slotted `Learner.act` logs, at position 0, the SquareCB probability of the item drawn
    (gamma from the learner's step), the probs column is that distribution, and the greedy
    slots log 1; the scores order the greedy slots."""
    lr = _learner()
    lr.step = 25  # gamma = 10 * 5
    s, c = np.ones(D, np.float32) / np.sqrt(D), _cands(7, valid=6)
    for _ in range(20):
        ch = lr.act(s, c, 4)
        assert ch.explored is not None and ch.scores is not None
        ps = logged_propensities(lr, s, c, ch, False, "req")
        valid = np.flatnonzero(c.mask)
        order = valid[np.argsort(-ch.scores[valid], kind="stable")]
        exact = squarecb_probs(ch.scores[order].astype(np.float64), 50.0, 0)
        want = exact[list(order).index(ch.indices[0])]
        assert ps[0] == pytest.approx(want, rel=1e-5)
        assert ch.probs[order] == pytest.approx(exact, rel=1e-5) and ch.probs[6] == 0.0
        assert ps[~ch.explored] == pytest.approx(1.0)
        assert ch.explored.tolist() == [True, False, False, True]


def test_an_explore_window_sets_the_slots_and_q_weight() -> None:
    """A window (a drift alarm's, `RecommendConfig.drift_explore_slots`, `drift_q_weight`)
    explores its own number of slots, and Q weight 0 ranks by the bias alone; without it the
    policy's two slots return."""
    lr = _learner()
    lr.step = 25  # gamma = 10 * 5
    s, c = np.ones(D, np.float32) / np.sqrt(D), _cands(7, valid=6)
    wide = lr.act(s, c, 4, window=ExploreWindow(3))
    assert wide.explored is not None and wide.explored.tolist() == [True, False, True, True]
    bias = np.arange(7, dtype=np.float32)[::-1].copy()  # row 0 best
    by_bias = lr.act(s, c, 4, greedy=True, bias=bias, window=ExploreWindow(0, q_weight=0.0))
    assert by_bias.indices.tolist() == [0, 1, 2, 3]
    with_q = lr.act(s, c, 4, greedy=True, bias=1e-3 * bias)
    assert with_q.indices.tolist() != [0, 1, 2, 3]  # Q's own order decides at a small bias
    own = lr.act(s, c, 4)
    assert own.explored is not None and own.explored.tolist() == [True, False, False, True]


def test_an_explore_window_sets_squarecbs_gamma_scale() -> None:
    """A window's `gamma_scale` (`RecommendConfig.drift_gamma_scale`) replaces the policy's in
    gamma = scale * sqrt(t): position 0's distribution is SquareCB's at that gamma, and narrower
    than the policy's own at a larger scale; 0 keeps the policy's."""
    lr = _learner()
    lr.step = 25  # the policy's gamma = 10 * 5
    s, c = np.ones(D, np.float32) / np.sqrt(D), _cands(7, valid=6)
    valid = np.flatnonzero(c.mask)

    def first(window: ExploreWindow | None, gamma: float) -> float:
        ch = lr.act(s, c, 4, window=window)
        assert ch.scores is not None
        order = valid[np.argsort(-ch.scores[valid], kind="stable")]
        exact = squarecb_probs(ch.scores[order].astype(np.float64), gamma, 0)
        assert ch.probs[order] == pytest.approx(exact, rel=1e-5)
        return float(ch.probs[order[0]])

    own = first(None, 50.0)
    assert first(ExploreWindow(0, gamma_scale=0.0), 50.0) == pytest.approx(own)
    assert first(ExploreWindow(0, gamma_scale=1000.0), 5000.0) > own


def test_plackett_luce_stays_selectable_and_greedy_marks_nothing() -> None:
    """list_draw plackett-luce draws as before (no slots marked, softmax probs); greedy acting
    marks no slot either."""
    s, c = np.ones(D, np.float32) / np.sqrt(D), _cands(7)
    pl = _learner(list_draw="plackett-luce").act(s, c, 3)
    assert pl.explored is None and pl.probs.sum() == pytest.approx(1.0)
    assert (pl.probs[c.mask] > 0).all()
    assert _learner().act(s, c, 3, greedy=True).explored is None


def test_greedy_top1_tells_an_explored_first_item_from_the_greedy_one() -> None:
    """`RecResult.greedy_top1`: True for a greedy first choice, False once exploration puts a
    lower-scoring candidate first (gamma 0: uniform over the pool)."""
    s, c = np.ones(D, np.float32) / np.sqrt(D), _cands(7)
    lr = _learner()
    state = UserState("u", s, "", 0.0)
    greedy = RecResult([], [], state, cands=c, choice=lr.act(s, c, 3, greedy=True))
    assert greedy.greedy_top1 is True
    seen = {
        RecResult([], [], state, cands=c, choice=lr.act(s, c, 3)).greedy_top1 for _ in range(60)
    }
    assert seen == {True, False}
