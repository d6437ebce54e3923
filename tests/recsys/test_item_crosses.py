"""The residual cross model (`recsys.rec.item_crosses`): hand-computed AdaGrad steps, crosses
that tell items apart by the history, and a position bias that learning uses and scoring
does not."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import RecommendConfig
from recsys.errors import BundleError
from recsys.rec.item_crosses import ItemCrosses, crosses_for, item_tokens, mix_tokens


def test_tokens_are_the_id_and_the_key_value_title_words() -> None:
    """An item's tokens: its id, then only the `key=value` words of its title."""
    assert len(item_tokens("a", "red scarf cat=3 brand=7")) == 3
    assert item_tokens("a", "cat=3") == item_tokens("a", "wool cat=3")
    assert item_tokens("a", "") != item_tokens("b", "")


def test_first_adagrad_step_moves_each_active_weight_by_lr() -> None:
    """No history, one token, base 0, reward 1 at position 0: err = 1, the weight moves by
    lr * 1 / sqrt(1e-6 + 1) ~ 0.1, so the score is ~0.1; a second step with the same target
    (err 0.9) adds 0.1 * 0.9 / sqrt(1 + 0.81)."""
    cx = ItemCrosses(bits=10, lr=0.1)
    cand = [cx.tokens("a", "")]
    mse = cx.update(cand, [], np.ones(1, np.float32), np.zeros(1))
    assert mse == 1.0
    assert np.isclose(cx.scores(cand, [])[0], 0.1, atol=1e-6)
    cx.update(cand, [], np.ones(1, np.float32), np.zeros(1))
    expected = 0.1 + 0.1 * 0.9 / np.sqrt(1.81)
    assert np.isclose(cx.scores(cand, [])[0], expected, atol=1e-6)


def test_history_crosses_tell_which_item_follows_which() -> None:
    """Rewarded a after history x and b after history y (the other pair 0), the model ranks a
    over b after x and b over a after y: identity x history, which Q's features lack."""
    cx = ItemCrosses(bits=16, lr=0.2)
    a, b = cx.tokens("a", "cat=1"), cx.tokens("b", "cat=1")
    x, y = cx.tokens("x", "cat=2"), cx.tokens("y", "cat=3")
    for _ in range(30):
        cx.update([a, b], [x], np.array([1.0, 0.0], np.float32), np.zeros(2))
        cx.update([a, b], [y], np.array([0.0, 1.0], np.float32), np.zeros(2))
    after_x, after_y = cx.scores([a, b], [x]), cx.scores([a, b], [y])
    assert after_x[0] > after_x[1] and after_y[1] > after_y[0]


def test_without_history_the_model_scores_each_item_alone() -> None:
    """`history` 0 (`RecommendConfig.item_crosses_history`): the same training as above leaves
    one score per item whatever the history."""
    cx = ItemCrosses(bits=16, lr=0.2, history=0)
    a, b = cx.tokens("a", "cat=1"), cx.tokens("b", "cat=1")
    x, y = cx.tokens("x", "cat=2"), cx.tokens("y", "cat=3")
    for _ in range(30):
        cx.update([a, b], [x], np.array([1.0, 0.0], np.float32), np.zeros(2))
        cx.update([a, b], [y], np.array([0.0, 1.0], np.float32), np.zeros(2))
    np.testing.assert_array_equal(cx.scores([a, b], [x]), cx.scores([a, b], [y]))
    np.testing.assert_array_equal(cx.scores([a, b], [x]), cx.scores([a, b], []))


def test_the_position_bias_absorbs_a_low_position_and_stays_out_of_scores() -> None:
    """An item shown once at position 5 with reward 1: the error 1 moves the position's bias
    and the item's weight by lr each; the score (position 0) holds the weight only; a target
    the prediction already meets moves nothing."""
    cx = ItemCrosses(bits=10, lr=0.1)
    cand = [cx.tokens("a", "")]
    cx.update(cand, [], np.ones(1, np.float32), np.array([5]))
    assert np.isclose(cx.pos[5], 0.1, atol=1e-6) and cx.pos[0] == 0.0
    assert np.isclose(cx.scores(cand, [])[0], 0.1, atol=1e-6)
    w = cx.w.copy()
    cx.update(cand, [], np.array([0.2], np.float32), np.array([5]))  # prediction 0.1 + 0.1
    assert np.allclose(cx.w, w) and np.isclose(cx.pos[5], 0.1, atol=1e-6)


def test_power_t_sets_how_fast_the_steps_shrink() -> None:
    """One token, no history: the k-th step divides by (1e-6 + sum of past g^2) ** power_t.
    Hand-computed second step at power_t 0.25: 0.1 * 0.9 / (1 + 0.81) ** 0.25."""
    cx = ItemCrosses(bits=10, lr=0.1, power_t=0.25)
    cand = [cx.tokens("a", "")]
    for _ in range(2):
        cx.update(cand, [], np.ones(1, np.float32), np.zeros(1))
    expected = 0.1 / (1 + 1e-6) ** 0.25 + 0.1 * 0.9 / (1.81 + 1e-6) ** 0.25
    assert np.isclose(cx.scores(cand, [])[0], expected, atol=1e-6)


def test_a_lower_power_t_unlearns_a_long_habit_sooner() -> None:
    """An item rewarded 1 for 400 decisions, then 0 (a taste shift): 20 decisions later the
    model at power_t 0.25 has moved its score further towards 0 than AdaGrad's 0.5, whose
    steps have shrunk with the whole habit's gradients."""
    after = {}
    for power_t in (0.5, 0.25):
        cx = ItemCrosses(bits=10, lr=0.1, power_t=power_t)
        cand = [cx.tokens("a", "cat=1")]
        for reward in [1.0] * 400 + [0.0] * 20:
            cx.update(cand, [], np.array([reward], np.float32), np.zeros(1))
        after[power_t] = float(cx.scores(cand, [])[0])
    assert after[0.25] < after[0.5] - 0.05, after


def test_the_config_builds_the_cross_model_it_names() -> None:
    """`crosses_for`: every setting from the config; no model at rate 0."""
    cfg = RecommendConfig(
        item_crosses_lr=0.2,
        item_crosses_history=3,
        item_crosses_power_t=0.3,
        item_crosses_last_weight=4.0,
        item_crosses_mix=20,
        item_crosses_target="click",
        item_crosses_position="exam",
    )
    cx = crosses_for(cfg)
    assert cx is not None
    got = (cx.lr, cx.history, cx.power_t, cx.last_weight, cx.mix, cx.target, cx.position)
    assert got == (0.2, 3, 0.3, 4, 20, "click", "exam")
    assert crosses_for(RecommendConfig()) is None


def test_last_weight_scales_the_last_items_crosses_against_the_rest() -> None:
    """One step on a 1-token item after a 1-token history (features: alone, history cross,
    last cross; each weight moves by lr): at last weight 1 each counts 1/3 of the score, at 4
    the last cross counts 4/6: a pair seen once lifts the score by lr either way, and its last
    cross alone gives 4/6 of that instead of 1/3."""
    a, x = item_tokens("a", ""), item_tokens("x", "")
    cand, hist = [np.array(a, np.uint64)], [np.array(x, np.uint64)]
    for weight, share in ((1.0, 1 / 3), (4.0, 4 / 6)):
        cx = ItemCrosses(bits=12, lr=0.1, history=1, last_weight=weight)
        cx.update(cand, hist, np.ones(1, np.float32), np.zeros(1))
        assert np.isclose(cx.scores(cand, hist)[0], 0.1, atol=1e-5)
        idx, _, _ = cx._index(cand, hist)
        only_last = np.zeros_like(cx.w)
        only_last[idx[0, -1]] = cx.w[idx[0, -1]]
        cx.w = only_last
        assert np.isclose(cx.scores(cand, hist)[0], 0.1 * share, atol=1e-5), weight


def _items(prefix: str, n: int, title: str) -> list[np.ndarray]:
    return [np.array(item_tokens(f"{prefix}{k}", title), np.uint64) for k in range(n)]


def test_mix_tokens_name_each_attribute_with_the_bucket_of_its_share() -> None:
    """`cat=1` on 4 of 5 items (share 0.8, top bucket) and on 1 of 5 (0.2, lowest) are two
    tokens; the same shares of other items give the same tokens; ids make none."""
    mostly = _items("a", 4, "cat=1 brand=9") + _items("b", 1, "cat=2 brand=9")
    rarely = _items("c", 1, "cat=1 brand=9") + _items("d", 4, "cat=2 brand=9")
    m, r = set(mix_tokens(mostly).tolist()), set(mix_tokens(rarely).tolist())
    assert len(m) == len(r) == 3  # cat=1, cat=2, brand=9
    assert len(m & r) == 1  # brand=9 on all five items in both
    again = _items("e", 4, "cat=1 brand=9") + _items("f", 1, "cat=2 brand=9")
    assert set(mix_tokens(again).tolist()) == m
    assert len(mix_tokens(_items("g", 3, "no attributes"))) == 0
    assert len(mix_tokens([])) == 0


def test_mix_tells_apart_histories_whose_latest_items_agree() -> None:
    """Two users share their last item; one's earlier history is mostly cat=1, the other's
    cat=2, and each is rewarded for the item of its category. With the last item alone
    (history 1) the model cannot tell them apart; crossing the mix of the latest 10 items,
    it ranks each user's category first."""
    last = _items("z", 1, "cat=9")
    hist_a = last + _items("a", 9, "cat=1")
    hist_b = last + _items("b", 9, "cat=2")
    cand = _items("p", 1, "cat=1") + _items("q", 1, "cat=2")
    for mix in (0, 10):
        cx = ItemCrosses(bits=16, lr=0.2, history=1, mix=mix)
        for _ in range(30):
            cx.update(cand, hist_a, np.array([1.0, 0.0], np.float32), np.zeros(2))
            cx.update(cand, hist_b, np.array([0.0, 1.0], np.float32), np.zeros(2))
        sa, sb = cx.scores(cand, hist_a), cx.scores(cand, hist_b)
        if mix:
            assert sa[0] > sa[1] + 0.1 and sb[1] > sb[0] + 0.1, (sa, sb)
        else:
            np.testing.assert_array_equal(sa, sb)


def test_a_click_target_fits_any_reward_as_one() -> None:
    """`target` "click": a first step on reward 0.4 moves the score as a step on 1 does (by
    lr), where the reward target moves it by lr as well but towards 0.4 only afterwards."""
    for target, second in (("click", 0.1 + 0.1 * 0.9 / np.sqrt(1.81)), ("reward", None)):
        cx = ItemCrosses(bits=10, lr=0.1, target=target)
        cand = [cx.tokens("a", "")]
        for _ in range(2):
            cx.update(cand, [], np.array([0.4], np.float32), np.zeros(1))
        if second is not None:
            assert np.isclose(cx.scores(cand, [])[0], second, atol=1e-6)
        else:  # err 0.4 then 0.4 - 0.1
            expected = 0.1 + 0.1 * 0.3 / np.sqrt(0.16 + 0.09)
            assert np.isclose(cx.scores(cand, [])[0], expected, atol=1e-6)


def test_an_examination_factor_ranks_by_attraction_where_a_bias_over_corrects() -> None:
    """The position-based model: the user examines position 5 with 0.4 of the top's chance.
    Item c, shown at both, teaches that (expected reward 0.4 on top, 0.16 at 5); a, always on
    top, earns 0.1; b, always at 5, earns 0.02 (attraction 0.05). The examination factor m_5
    goes to ~0.4 and r ranks a over b; an added bias (~-0.24 at 5) lifts b above a."""
    order = {}
    for position in ("exam", "bias"):
        cx = ItemCrosses(bits=16, lr=0.1, position=position)
        a, b, c = (cx.tokens(i, "") for i in "abc")
        for _ in range(3000):
            cx.update([c, c], [], np.array([0.4, 0.16], np.float32), np.array([0, 5]))
            cx.update([a, b], [], np.array([0.1, 0.02], np.float32), np.array([0, 5]))
        s = cx.scores([a, b, c], [])
        order[position] = s[0] > s[1]
        if position == "exam":
            assert np.isclose(cx.pos[5], 0.4, atol=0.03) and cx.pos[0] == 1.0
            np.testing.assert_allclose(s, [0.1, 0.05, 0.4], atol=0.02)
    assert order == {"exam": True, "bias": False}


def test_a_state_loads_only_into_the_same_position_model() -> None:
    """A bias model's state (position 0's number 0) is refused by an examination model (1)."""
    bias, exam = ItemCrosses(bits=10), ItemCrosses(bits=10, position="exam")
    exam.load(ItemCrosses(bits=10, position="exam").state())
    with pytest.raises(BundleError, match="position 0"):
        exam.load(bias.state())
