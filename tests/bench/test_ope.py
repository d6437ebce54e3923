"""Off-policy evaluation with OBP on the service's exported logs (`bench.ope`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.errors import OpeRunError
from bench.ope import ObpEnvConfig, estimate_policy_values
from bench.ope.runner import ESTIMATORS, load_feedback
from serving.core import ServingCore
from serving.logs_export import export_logs
from serving.service import DecisionSnapshot, EventRecord
from serving.store import Store
from tests.serving.test_serving_core import ITEMS, _core


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def _logged_store(tmp: Path, decisions: int = 48) -> Path:
    """A sampling items-scorer core's decisions (3 items each) and planted feedback in a store:
    a shown hat (i10..i19) is bought, anything else ignored. Returns the exported .npz."""
    core: ServingCore = _core(tmp, recommend={"scorer": "items"}, policy="sample")
    store = Store(tmp / "db.sqlite3")
    rng = np.random.default_rng(0)
    now = time.time()
    for k in range(decisions):
        hist = [ITEMS[int(i)] for i in rng.choice(30, size=3, replace=False)]
        events = tuple(EventRecord(i, "click", now - 100 + j) for j, i in enumerate(hist))
        r = core.recommend(f"u{k % 12}", 3, {}, events, [], False)
        did = f"d{k:03d}"
        items = tuple(i.item_id for i in r.items)
        store.put_decision(
            DecisionSnapshot(did, f"u{k % 12}", r.state, r.candidates, (), items, "v", now + k)
        )
        for item in items:
            if 10 <= int(item[1:]) < 20:
                store.insert_feedback(f"{did}-{item}", did, item, "alipay", None)
    core.checkpoint()
    store.close()
    out = tmp / "feedback.npz"
    summary = export_logs(tmp / "db.sqlite3", out)
    assert summary.records == 3 * decisions and not summary.left_out, summary
    return out


def _logging_and_uniform(npz: Path, positions: int) -> dict[str, np.ndarray]:
    """Evaluation policies: one that gives each logged (item, position) its logged pscore
    (the rest spread evenly: IPW weights are 1, so IPW = the mean logged reward) and uniform."""
    fb = load_feedback(npz)
    n_dec, n_actions = len(fb["decisions"]), int(fb["n_actions"])
    logging = np.zeros((n_dec, n_actions, positions))
    for d, a, k, p in zip(
        fb["decision_index"], fb["action"], fb["position"], fb["pscore"], strict=True
    ):
        if k < positions:
            logging[d, :, k] = (1.0 - p) / (n_actions - 1)
            logging[d, a, k] = p
    uniform = np.full((n_dec, n_actions, positions), 1.0 / n_actions)
    return {"logging": logging, "uniform": uniform}


@pytest.mark.slow
def test_export_loads_into_obp_and_ipw_of_the_logging_policy_is_the_mean_reward(
    tmp_path: Path,
) -> None:
    """The export runs through OBP's IPW/SNIPW/DM/DR in the pinned venv: every estimate is
    finite, IPW and SNIPW of the logging policy equal the mean logged reward."""
    npz = _logged_store(tmp_path)
    fb = load_feedback(npz)
    positions = 2
    dists = _logging_and_uniform(npz, positions)
    est = estimate_policy_values(
        npz, dists, positions=positions, n_bootstrap=50, workdir=tmp_path / "ope"
    )
    assert set(est) == {"logging", "uniform"}
    for per in est.values():
        assert set(per) == set(ESTIMATORS)
        for e in per.values():
            assert np.isfinite([e.value, e.lo, e.hi]).all() and e.lo <= e.hi, e
    mean = float(fb["reward"][fb["position"] < positions].mean())
    assert 0.0 < mean < 1.0, "the planted purchases give a mixed reward"
    assert est["logging"]["ipw"].value == pytest.approx(mean, abs=1e-9)
    assert est["logging"]["snipw"].value == pytest.approx(mean, abs=1e-9)
    assert est["logging"]["dm"].value == pytest.approx(mean, abs=0.25)


def test_inconsistent_action_dists_are_refused_before_obp_runs(tmp_path: Path) -> None:
    """A wrong shape or rows that do not sum to 1 raise ValueError naming the policy."""
    npz = _logged_store(tmp_path, decisions=6)
    fb = load_feedback(npz)
    n_dec, n_actions = len(fb["decisions"]), int(fb["n_actions"])
    bad_shape = {"p": np.full((n_dec + 1, n_actions, 1), 1.0 / n_actions)}
    with pytest.raises(ValueError, match="'p' has shape"):
        estimate_policy_values(npz, bad_shape, workdir=tmp_path / "w")
    not_dist = {"q": np.full((n_dec, n_actions, 1), 0.5)}
    with pytest.raises(ValueError, match="must sum to 1"):
        estimate_policy_values(npz, not_dist, workdir=tmp_path / "w")


def test_an_env_that_cannot_be_built_raises_ope_run_error(tmp_path: Path) -> None:
    """No interpreter to build the venv with: OpeRunError says which step failed."""
    from bench.ope import ensure_obp_env

    cfg = ObpEnvConfig(path=tmp_path / "venv", python=str(tmp_path / "no-python"))
    with pytest.raises(OpeRunError, match="create OBP venv failed"):
        ensure_obp_env(cfg)


def test_export_records_each_decisions_candidate_pool(tmp_path: Path) -> None:
    """`pool_decision` / `pool_action` hold, per exported decision, exactly the items its
    stored candidate snapshot lists, and each logged first item lies in its own pool."""
    from serving.decision_blob import DecisionBlob

    fb = load_feedback(_logged_store(tmp_path))
    z = dict(np.load(tmp_path / "feedback.npz"))
    store = Store(tmp_path / "db.sqlite3")
    try:
        blobs = [DecisionBlob.decode(store.get_decision(str(d)).candidates) for d in z["decisions"]]
    finally:
        store.close()
    row = {str(s): a for a, s in enumerate(z["item_ids"])}
    for i, blob in enumerate(blobs):
        pool = z["pool_action"][z["pool_decision"] == i].tolist()
        assert blob.kind == "items" and pool == [row[s] for s in blob.sids], i
        assert 1 < len(pool) < int(fb["n_actions"]), "a pool is a real subset"
        first = fb["action"][(fb["decision_index"] == i) & (fb["position"] == 0)]
        assert len(first) == 1 and int(first[0]) in pool, i
