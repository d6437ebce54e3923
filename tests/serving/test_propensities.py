"""Logged propensities: the position marginals they come from, the lists the service serves and
stores with them, and `memento logs export --format obp` (layout, left-out counts, bad input)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recsys.rec.request import PSCORE_FILL, PSCORE_LLM, RecResult
from recsys.records import UserState
from recsys.rl.policy import (
    choice_propensities,
    epsilon_greedy_marginals,
    list_propensities,
    position_marginals,
)
from serving.decision_blob import DecisionBlob
from serving.process import ServerProcess
from serving.service import DecisionSnapshot
from serving.store import Store
from serving.testing import AUTH, metric, server_env, wait_idle

ROOT = Path(__file__).resolve().parents[2]


def _pl_marginals(p: np.ndarray, m: int) -> np.ndarray:
    """(K, m) exact Plackett-Luce position marginals by enumerating every ordered slate."""
    out = np.zeros((len(p), m))
    for slate in itertools.permutations(np.flatnonzero(p > 0).tolist(), m):
        prob, left = 1.0, 1.0
        for i in slate:
            prob *= p[i] / left
            left -= p[i]
        for j, i in enumerate(slate):
            out[i, j] += prob
    return out


@settings(max_examples=40, deadline=None)
@given(
    logits=st.lists(st.floats(-4.0, 4.0), min_size=2, max_size=7),
    masked=st.lists(st.booleans(), min_size=7, max_size=7),
    m=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_position_marginals_columns_sum_to_one_and_column_zero_is_the_softmax(
    logits: list[float], masked: list[bool], m: int, seed: int
) -> None:
    """Every column is a distribution over the valid entries; column 0 is softmax exactly."""
    logp = np.array(logits)
    logp[np.array(masked[: len(logp)])] = -np.inf
    valid = np.isfinite(logp)
    if not valid.any():
        logp[0], valid[0] = 0.0, True
    m = min(m, int(valid.sum()))
    out = position_marginals(logp, m, 500, np.random.default_rng(seed))
    assert out.shape == (len(logp), m)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-9)
    soft = np.where(valid, np.exp(logp - logp[valid].max()), 0.0)
    np.testing.assert_allclose(out[:, 0], soft / soft.sum(), atol=1e-12)
    assert (out[~valid] == 0).all(), "masked entries are never shown"


def test_position_marginals_match_the_enumerated_plackett_luce_marginals() -> None:
    """Monte-Carlo columns agree with the brute-force enumeration within 4 standard errors."""
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    out = position_marginals(np.log(p), 3, 20_000, np.random.default_rng(0))
    exact = _pl_marginals(p, 3)
    np.testing.assert_allclose(out, exact, atol=4 * 0.5 / math.sqrt(20_000))


@pytest.mark.parametrize("slate", [(5, 4, 3, 2), (0, 1, 2, 3), (3, 0, 5, 1)])
def test_list_propensities_are_exact_at_positions_one_and_two(slate: tuple[int, ...]) -> None:
    """Positions 1 and 2 equal the enumerated Plackett-Luce marginals to rounding; positions 3
    and 4 (sampled prefixes) agree within 4 standard errors of a [0, 1] average."""
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    exact = _pl_marginals(p, 4)[list(slate), range(4)]
    got = list_propensities(np.log(p), np.array(slate), np.random.default_rng(0), draws=20_000)
    np.testing.assert_allclose(got[:2], exact[:2], rtol=1e-12)
    np.testing.assert_allclose(got[2:], exact[2:], atol=4 * 0.5 / math.sqrt(20_000))


def test_list_propensities_ignore_masked_candidates_and_never_give_a_shown_item_zero() -> None:
    """A masked candidate changes nothing; with a dominant candidate and no sampled prefix the
    realised prefix alone still gives each shown item a positive propensity."""
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logp = np.append(np.log(p), -np.inf)  # one masked candidate
    got = list_propensities(logp, np.array([3, 0, 5]), np.random.default_rng(1), draws=20_000)
    exact = _pl_marginals(p, 3)[[3, 0, 5], range(3)]
    np.testing.assert_allclose(got[:2], exact[:2], rtol=1e-12)
    dominant = np.log(np.array([1 - 3e-9, 1e-9, 1e-9, 1e-9]))
    tail = list_propensities(dominant, np.array([1, 2, 3]), np.random.default_rng(0), draws=0)
    assert (tail > 0).all() and (tail <= 1).all(), tail


def test_epsilon_greedy_marginals_match_the_hand_computed_two_item_case() -> None:
    """Two items, eps = 0.2: the best is first w.p. 0.9 (exact) and second w.p. 0.1 (MC)."""
    out = epsilon_greedy_marginals(np.array([1, 0]), 3, 2, 0.2, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(out[[1, 0], 0], [0.9, 0.1], atol=1e-12)
    np.testing.assert_allclose(out[[1, 0], 1], [0.1, 0.9], atol=4 * 0.5 / math.sqrt(4000))
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-12)
    assert (out[2] == 0).all()


def test_choice_propensities_are_in_zero_one_and_one_when_greedy() -> None:
    """A drawn item never gets 0 (the realised draw counts); greedy lists get 1."""
    rng = np.random.default_rng(0)
    probs = np.array([0.97, 0.01, 0.01, 0.01])
    p = choice_propensities(probs, np.array([3, 2, 1]), rng, sampled=True, draws=50)
    assert (p > 0).all() and (p <= 1).all() and p[0] == pytest.approx(0.01)
    assert choice_propensities(probs, np.array([0, 1]), rng, sampled=False).tolist() == [1, 1]


def test_llm_head_and_popularity_fill_get_no_propensity() -> None:
    """The head an LLM re-ordered and the fill past the drawn positions are None, with why."""
    res = RecResult([5, 6, 7, 8, 9], [0.0] * 5, UserState("u", np.zeros(2, np.float32), "", 0.0))
    res.used_llm = True
    res.set_propensities([0.5, 0.3, 0.2, 0.1], llm_depth=2)
    assert res.propensities == [None, None, 0.2, 0.1, None]
    assert res.propensity_gaps == [PSCORE_LLM, PSCORE_LLM, "", "", PSCORE_FILL]


def test_old_decision_blobs_still_load_without_propensities() -> None:
    """A blob stored before propensities were logged decodes with pscores None."""
    old = b'{"sids":["a"],"sims":[0.5],"feats":[[1.0]],"chosen":[0],"logp":[-0.1],'
    old += b'"case_items":[["a"]],"text":"t","kind":"items"}'
    blob = DecisionBlob.decode(old)
    assert blob.sids == ["a"] and blob.pscores is None and blob.pscore_gaps is None


# --- the real service ------------------------------------------------------------------------
def _post(c: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(path, json=body, headers=AUTH)
    assert r.status_code in (200, 202), (path, r.status_code, r.text)
    out: dict[str, Any] = r.json()
    return out


def test_service_logs_propensities_and_the_obp_export_matches_them(tmp_path: Path) -> None:
    """A sampling items-scorer service answers and stores pscores in (0, 1]; cold and filled
    positions have none; the export holds exactly the logged positions, counted by reason."""
    db = tmp_path / "db.sqlite3"
    env = server_env(db, MEMENTO_FRESH__RECOMMEND__SCORER="items", MEMENTO_POLICY="sample")
    served: dict[tuple[str, int], tuple[str, float]] = {}
    rewarded: set[tuple[str, str]] = set()
    now = time.time()
    srv = ServerProcess(env, log=tmp_path / "server.log")
    with srv, httpx.Client(base_url=srv.url, timeout=30.0) as c:
        for u, hist in enumerate((["red wool scarf", "winter gloves"], ["beach sandals"])):
            events = [{"item_id": i, "ts": now - 100 + k} for k, i in enumerate(hist)]
            _post(c, "/v1/events", {"user_id": f"u{u}", "events": events})
        for k in range(6):
            body = _post(c, "/v1/recommend", {"user_id": f"u{k % 2}", "n": 4})
            items = body["items"]
            assert isinstance(items, list) and len(items) == 4
            for pos, it in enumerate(items):
                p = it["propensity"]
                assert p is not None and 0.0 < p <= 1.0, it
                served[(str(body["decision_id"]), pos)] = (it["item_id"], p)
            assert items[0]["propensity"] < 1.0, "a sampled first position is not certain"
            # the slotted explorer (the default): exploration slots 0 and 3 marked, the greedy
            # slots between them logged with probability 1 (conditional on the items above)
            assert [it["explored"] for it in items] == [True, False, False, True], items
            assert [it["propensity"] for it in items[1:3]] == [1.0, 1.0], items
            target = items[k % 4]["item_id"]
            fb = {"decision_id": body["decision_id"], "item_id": target, "action": "alipay"}
            _post(c, "/v1/feedback", {**fb, "idempotency_key": f"k{k}"})
            rewarded.add((str(body["decision_id"]), target))
        cold = _post(c, "/v1/recommend", {"user_id": "nobody", "n": 3})["items"]
        assert [i["propensity"] for i in cold] == [None] * 3
        long = _post(c, "/v1/recommend", {"user_id": "u0", "n": 40})["items"]
        assert isinstance(long, list)
        n_fill = sum(i["propensity"] is None for i in long)
        assert long[0]["propensity"] is not None and n_fill > 0, "the pool is shorter"
        wait_idle(c, 6)
        top1, greedy = (
            metric(c, "memento_policy_top1_total"),
            metric(c, "memento_policy_top1_greedy_total"),
        )
        assert top1 == 7 and 0 <= greedy < top1, (top1, greedy)  # 7 warm first choices
        share = c.get("/ui/api/stats").json()["greedy_top1_share"]
        assert share == pytest.approx(greedy / top1)
    store = Store(db)
    stored = [store.get_decision(d) for d, _ in served]
    store.close()
    blobs = [DecisionBlob.decode(d.candidates) for d in stored if d is not None]
    assert len(blobs) == len(served) and all(b.pscores and len(b.pscores) == 4 for b in blobs)
    out = tmp_path / "feedback.npz"
    cmd = [sys.executable, "-m", "memento", "logs", "export", "--format", "obp"]
    proc = subprocess.run(
        [*cmd, "--db", str(db), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    z = dict(np.load(out))
    r, n_actions = int(z["n_rounds"]), int(z["n_actions"])
    assert summary["records"] == r == len(served) + len(long) - n_fill
    assert summary["left_out"] == {"cold_start": 3, "popularity_fill": n_fill}
    assert summary["decisions_read"] == 8 and summary["decisions"] == 7
    for name in ("action", "position", "reward", "pscore", "decision_id", "user_id"):
        assert z[name].shape == (r,), name
    assert z["context"].shape[0] == r and z["context"].shape[1] == z["action_context"].shape[1]
    assert z["action_context"].shape[0] == n_actions == len(z["item_ids"])
    assert int(z["len_list"]) == int(z["position"].max()) + 1
    assert ((z["pscore"] > 0) & (z["pscore"] <= 1)).all()
    assert len(z["decisions"]) == 7
    assert (z["decisions"][z["decision_index"]] == z["decision_id"]).all()
    for k in range(r):
        key = (str(z["decision_id"][k]), int(z["position"][k]))
        if key in served:
            item, p = served[key]
            assert z["item_ids"][z["action"][k]] == item
            assert z["pscore"][k] == pytest.approx(p, rel=1e-6)
            want = 1.0 if (key[0], item) in rewarded else 0.0
            assert z["reward"][k] == pytest.approx(want), key


# --- bad input ---------------------------------------------------------------------------------
def _export(*args: str) -> tuple[int, str, BaseException | None]:
    from memento.cli import app

    res = CliRunner().invoke(app, ["logs", "export", *args])
    return res.exit_code, res.output, res.exception


def test_export_refuses_unknown_format_missing_db_and_empty_db(tmp_path: Path) -> None:
    """Unknown format, a missing or empty store, no model bundle: exit 2 and a message, no
    traceback, nothing written."""
    empty = tmp_path / "empty.sqlite3"
    Store(empty).close()
    one = Store(tmp_path / "one" / "db.sqlite3")  # a decision, but no model snapshot beside it
    one.put_decision(DecisionSnapshot("d", "u", b"", b"{}", (), ("i",), "v", 0.0))
    one.close()
    cases = {
        "unknown format 'csv'": ["--format", "csv", "--db", str(empty)],
        "no store database at": ["--db", str(tmp_path / "missing.sqlite3")],
        "holds no decision": ["--db", str(empty)],
        "no model bundle at": ["--db", str(tmp_path / "one" / "db.sqlite3")],
    }
    for message, args in cases.items():
        code, output, exc = _export(*args, "--out", str(tmp_path / "x.npz"))
        assert code == 2, (args, output)
        assert isinstance(exc, SystemExit), f"a traceback instead of a message: {exc!r}"
        assert message in output and "Traceback" not in output, output
    assert not (tmp_path / "x.npz").exists()
