"""Core throughput: soft-TD updates/s vs the bare MLP floor, and case-bank search latency.

1. TD updates per second of `Learner.update()` (replay sample + collate + target pass + twin
   loss + backward + clip + Adam + Polyak) at batch 256, K = 32, d = 512, next to the floor
   measured in the same run: forward + backward of the same twin network on a pre-built batch.
2. faiss search latency (single query, p50/p99 in ms) and bytes per case at each bank size for
   flat and HNSW (through `recsys.memory.faiss_index.FaissIndex`, the one faiss importer).
   Baseline in
   the same run: the flat (exact) index. Metadata bytes per case: a real `CaseBank` of 10k cases
   saved to disk (sqlite with key blobs), divided by its size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any


def _fake_transitions(n: int, k: int, d: int, m: int, seed: int) -> list[Any]:
    import numpy as np

    from recsys.records import CASE_FEATURES, Candidates, Transition

    rng = np.random.default_rng(seed)

    def cands() -> Candidates:
        keys = rng.normal(size=(k, d)).astype(np.float32)
        return Candidates(
            case_ids=rng.integers(0, 10**6, k).astype(np.int64),
            keys=keys,
            sims=rng.uniform(size=k).astype(np.float32),
            features=rng.uniform(size=(k, len(CASE_FEATURES))).astype(np.float32),
            mask=np.ones(k, bool),
        )

    pool = [cands() for _ in range(64)]
    out = []
    for i in range(n):
        out.append(
            Transition(
                state=rng.normal(size=d).astype(np.float32),
                cands=pool[i % 64],
                chosen=rng.choice(k, m, replace=False).astype(np.int64),
                logp=np.full(m, -np.log(k), np.float32),
                rewards=rng.uniform(size=m).astype(np.float32),
                next_state=rng.normal(size=d).astype(np.float32),
                next_cands=pool[(i + 1) % 64],
                done=False,
            )
        )
    return out


def bench_td(batch: int = 256, k: int = 32, dim: int = 512, iters: int = 30) -> dict[str, float]:
    """updates/s of Learner.update() and of a bare forward+backward of the same network."""
    import torch

    from recsys.config import LearnerConfig
    from recsys.rl.learner import Learner

    cfg = LearnerConfig(batch_size=batch, min_replay=batch)
    learner = Learner(cfg, dim, dim)
    for t in _fake_transitions(2048, k, dim, 4, seed=0):
        learner.observe(t)
    for _ in range(3):
        learner.update()
    t0 = time.perf_counter()
    for _ in range(iters):
        learner.update()
    td = iters / (time.perf_counter() - t0)

    b = learner.replay.sample(batch)
    net = learner.q
    for _ in range(3):
        q1, q2 = net(b.state, b.cands.keys, b.cands.features)
        (q1.square().mean() + q2.square().mean()).backward()
    t0 = time.perf_counter()
    for _ in range(iters):
        net.zero_grad(set_to_none=True)
        q1, q2 = net(b.state, b.cands.keys, b.cands.features)
        (q1.square().mean() + q2.square().mean()).backward()
    floor = iters / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for _ in range(iters):
        learner.replay.sample(batch)
    sample_ms = 1000 * (time.perf_counter() - t0) / iters
    return {
        "td_updates_per_s": round(td, 2),
        "bare_fwd_bwd_per_s": round(floor, 2),
        "td_over_floor": round(td / floor, 3),
        "replay_sample_collate_ms": round(sample_ms, 2),
        "batch": batch,
        "K": k,
        "dim": dim,
        "torch_threads": torch.get_num_threads(),
    }


def bench_index(kind: str, n: int, dim: int, queries: int, k: int, seed: int) -> dict[str, Any]:
    """Build an index of n random unit vectors, time `queries` single-query searches."""
    import numpy as np

    from recsys.config import CaseBankConfig
    from recsys.memory.faiss_index import FaissIndex

    rng = np.random.default_rng(seed)
    cfg = CaseBankConfig(index=kind, hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=64)  # type: ignore[arg-type]
    idx = FaissIndex(cfg, dim)
    t0 = time.perf_counter()
    chunk = 100_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.normal(size=(m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        idx.add(np.arange(start, start + m, dtype=np.int64), x)
    build_s = time.perf_counter() - t0
    q = rng.normal(size=(queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    idx.search(q[:5], k)
    lat = []
    for i in range(queries):
        t = time.perf_counter()
        idx.search(q[i : i + 1], k)
        lat.append(1000 * (time.perf_counter() - t))
    return {
        "index": kind,
        "cases": n,
        "build_s": round(build_s, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 4),
        "p99_ms": round(float(np.percentile(lat, 99)), 4),
        "index_bytes_per_case": round(idx.nbytes() / n, 1),
    }


def bench_metadata(n: int = 10_000, dim: int = 512) -> float:
    """Bytes per case of a saved CaseBank (index + sqlite metadata with key blobs)."""
    import numpy as np

    from recsys.config import CaseBankConfig
    from recsys.memory.case_bank import CaseBank
    from recsys.records import Case

    rng = np.random.default_rng(0)
    bank = CaseBank(CaseBankConfig(merge_threshold=2.0), dim)
    keys = rng.normal(size=(n, dim)).astype(np.float32)
    payload = {"item_id": "i123456", "title": "示例 商品 标题 连衣裙", "action": "click"}
    bank.write_batch([Case(key=keys[i], payload=payload, reward=0.1, ts=0.0) for i in range(n)])
    with tempfile.TemporaryDirectory() as tmp:
        bank.save(tmp)
        meta = (Path(tmp) / "meta.sqlite").stat().st_size
    bank.close()
    return round(meta / n, 1)


def run_core(sizes: list[int], dim: int, queries: int, threads: int) -> dict[str, Any]:
    """Every figure of the core benchmark as one JSON-ready dict."""
    import torch

    from recsys.memory.faiss_index import FaissIndex

    torch.set_num_threads(threads)
    FaissIndex.set_threads(threads)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"td": bench_td()}
    rows = []
    for n in sizes:
        for kind in ("flat", "hnsw"):
            rows.append(bench_index(kind, n, dim, queries, 32, seed=n))
    result["faiss"] = {"dim": dim, "k": 32, "rows": rows}
    result["metadata_bytes_per_case_d512"] = bench_metadata()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result
