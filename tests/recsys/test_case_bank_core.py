"""Case bank: brute-force agreement, -1 filtering, delete, merge, eviction, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.config import CaseBankConfig
from recsys.memory.case_bank import CaseBank, CaseBankError, CaseNotFoundError
from recsys.records import Case


def _cases(n: int, d: int, seed: int = 0, key: str = "") -> list[Case]:
    rng = np.random.default_rng(seed)
    return [
        Case(
            key=rng.normal(size=d).astype(np.float32),
            payload={"i": i},
            reward=i / n,
            ts=float(i),
            payload_key=key,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_matches_brute_force(kind: str) -> None:
    """Top-k ids and cosine sims equal a numpy brute-force ranking (HNSW: recall >= 0.95)."""
    d, n, k = 16, 500, 10
    bank = CaseBank(CaseBankConfig(index=kind, merge_threshold=2.0), d)
    cases = _cases(n, d)
    bank.write_batch(cases)
    keys = np.stack([c.key / np.linalg.norm(c.key) for c in cases])
    rng = np.random.default_rng(1)
    recall = []
    for _ in range(20):
        q = rng.normal(size=d).astype(np.float32)
        got = bank.search(q, k, now=0.0)
        sims = keys @ (q / np.linalg.norm(q))
        want = np.argsort(-sims)[:k]
        if kind == "flat":
            assert got.case_ids.tolist() == want.tolist()
            assert np.allclose(got.sims, sims[want], atol=1e-5)
        recall.append(len(set(got.case_ids) & set(want)) / k)
    assert np.mean(recall) >= 0.95


def test_a_time_window_search_keeps_the_nearest_cases_inside_it() -> None:
    """`since` (a drift alarm's forgetting) and `before` (as of a decision) keep the k nearest
    cases with since <= ts < before, in the brute-force order of those cases alone."""
    d, n, k = 16, 300, 8
    bank = CaseBank(CaseBankConfig(merge_threshold=2.0), d)
    cases = _cases(n, d)  # ts = i
    bank.write_batch(cases)
    keys = np.stack([c.key / np.linalg.norm(c.key) for c in cases])
    q = np.random.default_rng(2).normal(size=d).astype(np.float32)
    sims = keys @ (q / np.linalg.norm(q))
    for since, before in ((250.0, None), (100.0, 120.0), (None, 50.0)):
        lo, hi = since or 0.0, before or float(n)
        inside = np.flatnonzero((np.arange(n) >= lo) & (np.arange(n) < hi))
        want = inside[np.argsort(-sims[inside], kind="stable")][:k]
        got = bank.search(q, k, now=float(n), before=before, since=since)
        assert got.case_ids.tolist() == want.tolist(), (since, before)
    assert len(bank.search(q, k, now=float(n), since=float(n))) == 0


def test_small_bank_filters_padding_and_ivf_needs_data() -> None:
    """Asking for more than the bank holds returns only real cases (no -1 ids)."""
    bank = CaseBank(CaseBankConfig(merge_threshold=2.0), 8)
    bank.write_batch(_cases(3, 8))
    got = bank.search(np.ones(8, np.float32), 10)
    assert len(got) == 3 and bool((got.case_ids >= 0).all()) and got.num_valid == 3
    ivf = CaseBank(CaseBankConfig(index="ivf", ivf_nlist=64, merge_threshold=2.0), 8)
    with pytest.raises(CaseBankError):
        ivf.write_batch(_cases(10, 8))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_delete_and_get(kind: str) -> None:
    """Deleted cases are never retrieved again and get() raises CaseNotFoundError."""
    bank = CaseBank(CaseBankConfig(index=kind, merge_threshold=2.0), 8)
    ids = bank.write_batch(_cases(50, 8))
    bank.delete(ids[:25])
    assert len(bank) == 25
    got = bank.search(np.ones(8, np.float32), 50)
    assert set(got.case_ids.tolist()) == set(ids[25:])
    with pytest.raises(CaseNotFoundError):
        bank.get(ids[0])
    assert bank.get(ids[30]).payload == {"i": 30}


def test_near_duplicates_merge_only_with_same_payload_key() -> None:
    """A near-identical key with the same payload key merges (running mean reward); else not."""
    bank = CaseBank(CaseBankConfig(merge_threshold=0.99), 8)
    key = np.arange(8, dtype=np.float32)
    a = bank.write(Case(key=key, payload={}, reward=1.0, ts=1.0, payload_key="i1|click"))
    b = bank.write(Case(key=key * 1.001, payload={}, reward=0.0, ts=5.0, payload_key="i1|click"))
    c = bank.write(Case(key=key, payload={}, reward=0.0, ts=5.0, payload_key="i2|click"))
    assert a == b != c
    merged = bank.get(a)
    assert merged.merged == 2 and merged.reward == 0.5 and merged.ts == 5.0
    assert len(bank) == 2


def test_capacity_evicts_lowest_utility_then_oldest() -> None:
    """Over capacity, the case with the lowest utility - age penalty goes first."""
    bank = CaseBank(CaseBankConfig(capacity=3, merge_threshold=2.0, age_weight_per_day=1.0), 4)
    rng = np.random.default_rng(0)
    day = 86400.0
    specs = [(0.0, 0 * day), (5.0, 0 * day), (0.0, 9 * day), (1.0, 10 * day)]
    ids = [
        bank.write(Case(key=rng.normal(size=4).astype(np.float32), payload={}, utility=u, ts=t))
        for u, t in specs
    ]
    # scores at now=10d: 0-10=-10, 5-10=-5, 0-1=-1, 1-0=1 -> the first case is evicted
    assert sorted(bank.ids()) == sorted(ids[1:])
    assert bank.stats["evicted"] == 1


def test_save_load_round_trip_identical_retrieval(tmp_path: Path) -> None:
    """A reloaded bank returns the same ids, sims, features and payloads."""
    bank = CaseBank(CaseBankConfig(index="hnsw", merge_threshold=2.0), 16)
    ids = bank.write_batch(_cases(300, 16))
    bank.delete(ids[:10])
    bank.update_stats(ids[20], utility=0.7, visits=3)
    bank.save(tmp_path / "bank")
    loaded = CaseBank.load(tmp_path / "bank")
    q = np.random.default_rng(3).normal(size=(5, 16)).astype(np.float32)
    for a, b in zip(
        bank.search_batch(q, 20, now=500.0), loaded.search_batch(q, 20, now=500.0), strict=True
    ):
        assert a.case_ids.tolist() == b.case_ids.tolist()
        assert np.array_equal(a.sims, b.sims) and np.array_equal(a.features, b.features)
    assert loaded.get(ids[20]).utility == 0.7 and loaded.get(ids[20]).visits == 3
    assert loaded.write(_cases(1, 16, seed=9)[0]) == 300  # ids continue after reload


def test_an_hnsw_index_past_its_tombstones_is_rebuilt_and_finds_the_live_vectors_only() -> None:
    """Removing 1,500 of 2,000 HNSW vectors (tombstones outnumber the live ones) rebuilds the
    index: no tombstones are left, it holds the 500 live vectors, and a search returns live ids
    only, the query's own vector first."""
    from recsys.memory.faiss_index import COMPACT_MIN, FaissIndex

    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(2000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = FaissIndex(CaseBankConfig(index="hnsw"), 16)
    idx.add(np.arange(2000, dtype=np.int64) + 100, vecs)
    idx.remove(range(100, 100 + COMPACT_MIN - 1))  # below the floor: tombstones only
    assert idx.index.ntotal == 2000 and idx.ntotal == 2000 - (COMPACT_MIN - 1)
    idx.remove(range(100 + COMPACT_MIN - 1, 1600))
    assert idx.index.ntotal == 500 and idx.ntotal == 500
    _, ids = idx.search(vecs[1700:1705], 10)
    assert ((ids >= 1600) & (ids < 2100)).all()
    assert ids[:, 0].tolist() == list(range(1800, 1805))


def test_the_rebuild_benchmark_keeps_the_live_vectors_only_in_its_rebuilt_variant() -> None:
    """`bench.index_rebuild` on 3,000 vectors written with 1,000 live: the baseline index
    holds all 3,000, the rebuilt one no more than the live ones and `COMPACT_MIN` tombstones,
    both with 1,000 live."""
    from bench.index_rebuild import measure
    from recsys.memory.faiss_index import COMPACT_MIN

    out = measure(written=3000, capacity=1000, dim=8, queries=5)
    assert out["tombstones_kept"]["vectors_in_index"] == 3000
    assert out["rebuilt"]["vectors_in_index"] < 1000 + COMPACT_MIN
    assert out["tombstones_kept"]["live"] == out["rebuilt"]["live"] == 1000
