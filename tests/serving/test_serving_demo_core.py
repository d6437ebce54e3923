"""DemoCore (the lightweight core used until the soft-Q core is wired): policy and learning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.demo_core import DemoCore, DemoCoreConfig, encode_state
from serving.service import CoreEvent, DecisionSnapshot, NewCase, RecommenderCore
from serving.store import Store

HISTORY = (CoreEvent("h1", "click", 1.0), CoreEvent("h2", "cart", 2.0))


def _core(tmp_path: Path, **cfg: float) -> DemoCore:
    return DemoCore(Store(tmp_path / "db.sqlite3"), DemoCoreConfig(**cfg))  # type: ignore[arg-type]


def test_demo_core_satisfies_the_protocol(tmp_path: Path) -> None:
    """The demo core is a structural `RecommenderCore`."""
    assert isinstance(_core(tmp_path), RecommenderCore)


def test_policy_matches_hand_computed_softmax(tmp_path: Path) -> None:
    """mu equals softmax((cos + q) / alpha) computed by hand over the candidates."""
    core = _core(tmp_path, alpha=0.5)
    ids = [core.write_case(NewCase("u", (f"x{k}",), 1.0, HISTORY[k:])) for k in range(2)]
    state = encode_state(HISTORY, {}, 64, 20)
    rows, _q, mu = core.policy(state)
    keys = {i: encode_state(HISTORY[k:], {}, 64, 20) for k, i in enumerate(ids)}
    logits = {i: float(keys[i] @ state) / 0.5 for i in ids}
    z = sum(math.exp(v) for v in logits.values())
    got = {core._ids[r]: float(m) for r, m in zip(rows, mu, strict=True)}
    for i in ids:
        assert abs(got[i] - math.exp(logits[i]) / z) < 1e-5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=0, max_size=6))
def test_policy_is_a_distribution(items: list[str]) -> None:
    """For any history, candidate probabilities are non-negative, sum to 1 and are sorted."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        core = _core(Path(tmp))
        for k in range(5):
            core.write_case(
                NewCase("u", (f"x{k}",), 1.0, (CoreEvent(f"{'abcde'[k]}", "click", 0),))
            )
        state = encode_state([CoreEvent(i, "click", 0) for i in items], {}, 64, 20)
        _, _, mu = core.policy(state)
        assert abs(float(mu.sum()) - 1) < 1e-5 and (mu >= 0).all()
        assert (np.diff(mu) <= 1e-7).all()


def test_positive_feedback_raises_source_case_probability(tmp_path: Path) -> None:
    """Rewarding an item raises mu of the case that sourced it; checkpoint+reload keeps it."""
    core = _core(tmp_path)
    target = core.write_case(NewCase("u", ("t",), 1.0, HISTORY))
    core.write_case(NewCase("u", ("r",), 1.0, HISTORY[1:]))
    rec = core.recommend("u", 5, {}, HISTORY, [], explain=False)
    before = {c.case_id: c.weight for c in rec.cases}[target]
    decision = DecisionSnapshot(
        "d",
        "u",
        rec.state,
        rec.candidates,
        tuple(c.case_id for c in rec.cases),
        tuple(i.item_id for i in rec.items),
        core.model_version,
        0.0,
    )
    update = core.apply_feedback(decision, "t", "alipay", 120.0)
    assert update.reward == 1.2 and update.td_loss is not None
    assert abs(update.td_loss - 1.2**2) < 1e-6, "first update from q=0"
    again = core.apply_feedback(decision, "t", "alipay", 120.0)
    assert again.new_case_id == update.new_case_id, "one case per (decision, item)"
    rec2 = core.recommend("u", 5, {}, HISTORY, [], explain=False)
    after = {c.case_id: c.weight for c in rec2.cases}[target]
    assert after > before
    core.checkpoint()
    reloaded = DemoCore(Store(tmp_path / "db.sqlite3"))
    value = reloaded.get_case(target)
    assert value is not None and abs(value.value - core.get_case(target).value) < 1e-6


def test_cold_start_falls_back_to_popularity(tmp_path: Path) -> None:
    """A user without history or cases gets the most popular items, excluded ones removed."""
    core = _core(tmp_path)
    core.observe_events("x", [CoreEvent(i, "click", 0) for i in ["p", "p", "p", "q", "q", "r"]])
    rec = core.recommend("new", 2, {}, [], ["p"], explain=False)
    assert [i.item_id for i in rec.items] == ["q", "r"] and rec.cases == ()
