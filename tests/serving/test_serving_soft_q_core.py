"""SoftQCore in process: protocol, bank durability (snapshot + log), idempotency, registry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from serving.service import CoreEvent, DecisionSnapshot, NewCase, RecommenderCore
from serving.settings import ServingSettings
from serving.soft_q_core import SoftQCore
from serving.store import Store


def _settings(tmp: Path, **kw: object) -> ServingSettings:
    return ServingSettings(db_path=tmp / "db.sqlite3", text_encoder="hashing", **kw)  # type: ignore[arg-type]


def _events(*items: str) -> tuple[CoreEvent, ...]:
    now = time.time()
    return tuple(CoreEvent(i, "click", now - 10 + k) for k, i in enumerate(items))


def _decide(core: SoftQCore, events: tuple[CoreEvent, ...], did: str = "d1") -> DecisionSnapshot:
    r = core.recommend("u1", 10, {}, events, [], False)
    return DecisionSnapshot(
        did,
        "u1",
        r.state,
        r.candidates,
        tuple(c.case_id for c in r.cases),
        tuple(i.item_id for i in r.items),
        core.model_version,
        time.time(),
    )


def _assert_weights_follow_q(
    r: object, core: SoftQCore, case_ids: np.ndarray, q: np.ndarray
) -> None:
    """The 2 returned cases' weights equal softmax(q / alpha) over the retrieved candidates."""
    rt = core.runtime
    mu = np.exp((q - q.max()) / rt.model.learner.alpha)
    mu /= mu.sum()
    by_sid = {rt.sid_of[int(i)]: float(p) for i, p in zip(case_ids, mu, strict=True)}
    cases = r.cases  # type: ignore[attr-defined]
    assert len(cases) == 2
    for c in cases:
        assert abs(c.weight - by_sid[c.case_id]) < 1e-3, (c, by_sid)


def test_soft_q_core_is_a_recommender_core(tmp_path: Path) -> None:
    """The soft-Q core satisfies the service Protocol and answers a cold start."""
    core = SoftQCore(_settings(tmp_path), Store(tmp_path / "db.sqlite3"))
    assert isinstance(core, RecommenderCore)
    r = core.recommend("nobody", 5, {}, (), (), explain=True)
    assert r.cases == () and r.explanation and not np.any(np.frombuffer(r.state, np.float32))


def test_policy_weights_are_the_learner_probabilities(tmp_path: Path) -> None:
    """Returned case weights equal softmax(min twin Q / alpha) over the retrieved candidates."""
    core = SoftQCore(_settings(tmp_path, num_chosen=2), Store(tmp_path / "db.sqlite3"))
    ev = _events("a", "b")
    for k in range(5):
        core.write_case(NewCase("s", (f"x{k}",), 1.0, _events("a", f"y{k}")))
    r = core.recommend("u1", 5, {}, ev, [], False)
    rt = core.runtime
    state = core.encode_state("u1", ev, {}, time.time())
    cands = rt.model.bank.search(state.vec, 32)
    q = rt.model.learner.scores(state.vec, cands)
    _assert_weights_follow_q(r, core, cands.case_ids, q)


def test_content_q_input_scores_cases_through_their_items(tmp_path: Path) -> None:
    """A bank trained with q_input="content" (offline replay's default) shows Q each case via
    its item's catalogue vector: the returned weights follow Q on those vectors, not the keys."""
    import dataclasses

    core = SoftQCore(_settings(tmp_path, num_chosen=2), Store(tmp_path / "db.sqlite3"))
    for k in range(5):
        core.write_case(NewCase("s", (f"x{k}",), 1.0, _events("a", f"y{k}")))
    rt = core.runtime
    bank = rt.model.bank
    bank.cfg = dataclasses.replace(bank.cfg, q_input="content")
    ev = _events("a", "b")
    r = core.recommend("u1", 5, {}, ev, [], False)
    state = core.encode_state("u1", ev, {}, time.time())
    cands = bank.search(state.vec, 32)
    items = [str(bank.get(int(i)).payload["items"][0]) for i in cands.case_ids]
    content = rt.catalog.vectors(items)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    assert not np.allclose(content, cands.keys, atol=1e-3)
    q = rt.model.learner.scores(state.vec, dataclasses.replace(cands, keys=content))
    _assert_weights_follow_q(r, core, cands.case_ids, q)


def test_feedback_case_write_is_idempotent_and_survives_restart(tmp_path: Path) -> None:
    """Replayed feedback writes its case once; after a restart, bank = snapshot + case log."""
    settings = _settings(tmp_path, snapshot_every_cases=1)
    store = Store(tmp_path / "db.sqlite3")
    core = SoftQCore(settings, store)
    ev = _events("a", "b")
    kept = core.write_case(NewCase("s", ("x",), 1.0, ev))
    gone = core.write_case(NewCase("s", ("y",), 1.0, ev))
    core.checkpoint()  # snapshot holds kept + gone
    d = _decide(core, ev)
    u1 = core.apply_feedback(d, d.items[0], "cart", None)
    u2 = core.apply_feedback(d, d.items[0], "cart", None)  # crash replay of the same feedback
    assert u1.new_case_id == u2.new_case_id and u1.reward == 0.6
    assert core.bank_size() == 3
    later = core.write_case(NewCase("s", ("z",), 1.0, ev))  # only in the log
    assert core.delete_case(gone)  # in the snapshot, deleted after it
    restarted = SoftQCore(settings, store)
    ids = set(restarted.runtime.int_of)
    assert ids == {kept, later, u1.new_case_id}, ids
    assert restarted.get_case(gone) is None and restarted.get_case(kept) is not None
    assert restarted.erase_user("u1") == 1 and restarted.bank_size() == 2
    restarted.write_case(NewCase("s", ("w",), 1.0, ev))  # not written into the loaded snapshot
    restarted.checkpoint()  # the erasure forces a bank snapshot
    again = SoftQCore(settings, store)
    assert set(again.runtime.int_of) == set(restarted.runtime.int_of) and again.bank_size() == 3


def test_loads_registered_champion_from_mlflow(tmp_path: Path) -> None:
    """MEMENTO_MODEL_URI=models:/name@champion loads the registered learner and case bank."""
    from training.tracking import Tracker, TrackingConfig

    src = SoftQCore(_settings(tmp_path / "src"), Store(tmp_path / "src" / "db.sqlite3"))
    case = src.write_case(NewCase("s", ("reg-item",), 1.0, _events("a")))
    src.checkpoint()
    model_dir = tmp_path / "src" / "checkpoints" / "snapshot"
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path)
    with Tracker(tracking, run_name="t") as t:
        t.register_model(model_dir, "memento-test", alias="champion")
    settings = _settings(
        tmp_path / "srv",
        model_uri="models:/memento-test@champion",
        mlflow_uri=tracking.uri,
    )
    core = SoftQCore(settings, Store(tmp_path / "srv" / "db.sqlite3"))
    assert "memento-test@champion" in core.model_version
    assert core.get_case(case) is not None and core.bank_size() == 1
    r = core.recommend("u9", 3, {}, _events("a"), [], False)
    assert [c.case_id for c in r.cases] == [case]
    assert "reg-item" in [i.item_id for i in r.items]
