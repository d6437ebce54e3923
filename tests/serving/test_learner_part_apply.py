"""Weights between serving cores travel as the bundle's learner part: what the shared learner
publishes makes a replica score exactly like it (Q and the items scorer's cross model), without
the learner's optimiser state."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys.bundle import LearnerPart
from serving.core import ServingCore, build_core
from serving.learner_loop import LearnerLoop
from serving.pg_store import PgStore
from serving.shared_learner import apply_published, part_host, q_digest
from tests.serving.test_serving_core import _core, _decide, _events, _settings, _write_cases


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def _learning_core(tmp: Path, learn: int = 0) -> ServingCore:
    """A fresh core (`test_serving_core`'s 30-item setup) with manual cases, after `learn`
    purchases of a recommended item (gradient steps)."""
    core = _core(tmp, recommend={"num_chosen": 1}, learner={"lr": 1e-2}, updates_per_feedback=4)
    _write_cases(core)
    d = _decide(core, _events("i0", "i2"))
    for k in range(learn):
        core.apply_feedback(dataclasses.replace(d, decision_id=f"d{k}"), d.items[0], "alipay", None)
    return core


def test_published_part_makes_a_replica_score_like_the_learner(tmp_path: Path) -> None:
    """After the learner core learned, its publication (no optimiser state, no target network)
    applied to a fresh replica core gives the same Q fingerprint and step; the replica's
    optimiser stays empty and its target network its own."""
    learner, replica = _learning_core(tmp_path / "learner", 3), _learning_core(tmp_path / "r")
    assert q_digest(learner) != q_digest(replica)
    published = learner.learner_part(optimiser=False).publication()
    assert published.optimiser is None and "q_target" not in published.weights
    target = {k: v.clone() for k, v in replica.runtime.learner.q_target.state_dict().items()}
    apply_published(replica, published.to_bytes())
    assert q_digest(replica) == q_digest(learner)
    rl, ll = replica.runtime.learner, learner.runtime.learner
    assert rl.step == ll.step > 0
    assert rl.opt.state_dict()["state"] == {} and ll.opt.state_dict()["state"] != {}
    assert all(v.equal(target[k]) for k, v in rl.q_target.state_dict().items())


def test_checkpoint_part_carries_the_optimiser_state(tmp_path: Path) -> None:
    """The checkpoint part (as the shared learner keeps it) restores the Adam moments too."""
    learner, other = _learning_core(tmp_path / "learner", 3), _learning_core(tmp_path / "o")
    ckpt = LearnerPart.from_bytes(learner.learner_part(optimiser=True).to_bytes())
    other.apply_learner_part(ckpt)
    a = learner.runtime.learner.opt.state_dict()["state"]
    b = other.runtime.learner.opt.state_dict()["state"]
    assert a.keys() == b.keys() and all(
        np.array_equal(a[k]["exp_avg"].numpy(), b[k]["exp_avg"].numpy()) for k in a
    )


CROSSES = {"scorer": "items", "item_crosses_lr": 0.1}
"""The items scorer with a cross model."""


def _crosses_core(tmp: Path, learn: int = 0) -> ServingCore:
    """A fresh items-scorer core with a cross model, after `learn` purchases of each of the
    first three listed items (one decision each)."""
    core = _core(tmp, recommend=CROSSES, learner={"lr": 1e-2}, updates_per_feedback=2)
    _write_cases(core)
    d = _decide(core, _events("i0", "i2"))
    for k in range(learn):
        for item in d.items[:3]:
            core.apply_feedback(dataclasses.replace(d, decision_id=f"d{k}"), item, "alipay", None)
    return core


def _cross_scores(core: ServingCore, history: list[str]) -> np.ndarray:
    """The cross model's r(s, item) of every catalogue item after `history` (most recent
    first)."""
    rt = core.runtime
    cx = rt.rec.crosses
    assert cx is not None
    ids = list(rt.items.ids)
    tok = [cx.tokens(i, t) for i, t in zip(ids, rt.items.titles_of(ids), strict=True)]
    return cx.scores(tok, [tok[rt.items.row_of[h]] for h in history])


def test_published_part_carries_the_cross_model(tmp_path: Path) -> None:
    """The learner's learned cross model travels in its publication: a fresh replica scores
    every item with the learner's crosses after the version is applied (all zero before)."""
    learner, replica = _crosses_core(tmp_path / "learner", 3), _crosses_core(tmp_path / "r")
    want = _cross_scores(learner, ["i2", "i0"])
    assert np.any(want != 0) and not np.any(_cross_scores(replica, ["i2", "i0"]))
    apply_published(replica, learner.learner_part(optimiser=False).publication().to_bytes())
    assert np.array_equal(_cross_scores(replica, ["i2", "i0"]), want)
    assert np.array_equal(_cross_scores(replica, []), _cross_scores(learner, []))
    assert q_digest(replica) == q_digest(learner)


def test_the_served_cross_model_takes_its_history_from_the_config(tmp_path: Path) -> None:
    """`item_crosses_history` 0: the served cross model scores items alone, so after learning
    its scores do not depend on the history (with the default 5 they do)."""
    core = _core(tmp_path, recommend={**CROSSES, "item_crosses_history": 0}, updates_per_feedback=2)
    _write_cases(core)
    d = _decide(core, _events("i0", "i2"))
    for item in d.items[:3]:
        core.apply_feedback(d, item, "alipay", None)
    assert core.runtime.rec.crosses is not None and core.runtime.rec.crosses.history == 0
    got = _cross_scores(core, ["i2", "i0"])
    assert np.any(got != 0) and np.array_equal(got, _cross_scores(core, []))
    five = _crosses_core(tmp_path / "five", 1)
    assert not np.array_equal(_cross_scores(five, ["i2", "i0"]), _cross_scores(five, []))


def test_a_part_without_a_cross_model_leaves_the_served_one(tmp_path: Path) -> None:
    """A version written before the cross model travelled (its file has no crosses) loads Q
    and leaves the replica's cross model as it was."""
    learner, replica = _crosses_core(tmp_path / "learner", 2), _crosses_core(tmp_path / "r", 1)
    before = _cross_scores(replica, ["i2", "i0"])
    old = dataclasses.replace(learner.learner_part(optimiser=False).publication(), crosses=None)
    apply_published(replica, old.to_bytes())
    assert q_digest(replica) == q_digest(learner)
    assert np.any(before != 0) and np.array_equal(_cross_scores(replica, ["i2", "i0"]), before)


def _crosses_of(core: ServingCore) -> dict[str, np.ndarray]:
    cx = core.runtime.rec.crosses
    assert cx is not None
    return {k: getattr(cx, k).copy() for k in ("w", "g2", "pos", "pos_g2")}


def test_shared_learner_versions_carry_the_cross_model(tmp_path: Path, pg_url: str) -> None:
    """Feedback on a worker's decision, applied by the shared learner (`LearnerLoop`, as the
    learner process of `--workers` runs it), reaches the worker's cross model through the
    published version; a restarted learner resumes its crosses, AdaGrad state included."""
    kw: dict[str, object] = dict(recommend=CROSSES, learner={"lr": 1e-2}, store_url=pg_url)
    worker_store = PgStore(pg_url)
    worker = build_core(_settings(tmp_path / "w", **kw), worker_store)
    d = _decide(worker, _events("i0", "i2"))
    worker_store.put_decision(d)
    rows = [(f"k{n}", d.decision_id, item, "alipay", None) for n, item in enumerate(d.items[:3])]
    worker_store.insert_feedback_many(rows)
    learner_settings = _settings(tmp_path / "l", **kw)
    loop = LearnerLoop(learner_settings, batch=8)
    deadline = time.monotonic() + 60
    while loop.applied < 3:
        assert time.monotonic() < deadline, loop.stats()
        time.sleep(0.05)
    loop.stop()
    learned = loop._core
    assert isinstance(learned, ServingCore)
    want = _cross_scores(learned, ["i2"])
    assert np.any(want != 0) and not np.any(_cross_scores(worker, ["i2"]))
    apply_published(worker, worker_store.versions_after(loop.version - 1)[-1].weights)
    assert np.array_equal(_cross_scores(worker, ["i2"]), want)
    restarted = LearnerLoop(learner_settings, batch=8)
    restarted.stop()
    assert isinstance(restarted._core, ServingCore)
    got, had = _crosses_of(restarted._core), _crosses_of(learned)
    assert all(np.array_equal(got[k], had[k]) for k in had), "restarted learner's crosses"
    worker_store.close()


def test_a_core_without_learner_parts_is_refused() -> None:
    """A custom core that cannot ship its learner is named in a `TypeError`."""

    class Bare:
        model_version: Any = "x"

    with pytest.raises(TypeError, match="Bare has no learner_part"):
        part_host(Bare())  # type: ignore[arg-type]


def test_the_served_policy_weighs_the_cross_model_by_the_config(tmp_path: Path) -> None:
    """`item_crosses_weight` 3: the bias the items scorer adds to Q is 3 x the cross model's
    r(s, item) of each pool item (1: r itself)."""
    from recsys.rec.request import RecRequest
    from recsys.rec.scorers.items import ItemsScorer
    from recsys.records import Action, Candidates, Interaction

    core = _core(tmp_path, recommend={**CROSSES, "item_crosses_weight": 3.0})
    _write_cases(core)
    d = _decide(core, _events("i0", "i2"))
    for item in d.items[:3]:
        core.apply_feedback(d, item, "alipay", None)
    rec, items = core.runtime.rec, core.runtime.items
    rows = np.arange(len(items.ids), dtype=np.int64)
    cands = Candidates(
        case_ids=rows,
        keys=items.vecs[rows].astype(np.float32),
        sims=np.zeros(len(rows), np.float32),
        features=np.zeros((len(rows), 1), np.float32),
        mask=np.ones(len(rows), bool),
    )
    events = [Interaction("u", i, Action.CLICK, ts) for i, ts in (("i0", 1.0), ("i2", 2.0))]
    bias = ItemsScorer().cross_bias(rec, RecRequest("u", events, 3.0), cands)
    r = _cross_scores(core, ["i2", "i0"])
    assert bias is not None and np.any(r != 0)
    np.testing.assert_allclose(bias, 3.0 * r, rtol=1e-6)
