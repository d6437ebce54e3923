"""Search cost of an HNSW case index at its capacity, with and without the rebuild past the
tombstones (`recsys.memory.faiss_index`), in one run on the same vectors and queries.

A served bank at its capacity evicts one case per case written; HNSW cannot remove, so each
eviction leaves a tombstone, and a search asks faiss for k + (tombstones) hits. The rebuild
drops the tombstones once they outnumber the live vectors. `python -m bench.index_rebuild`
prints one JSON object: per variant the search p50 (ms), the write + evict cost per decision
of 10 cases (ms, rebuilds included) and the vectors the index holds at the end.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import numpy as np

import recsys.memory.faiss_index as faiss_index
from recsys.config import CaseBankConfig

__all__ = ["measure"]


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _variant(rebuild: bool, written: int, capacity: int, dim: int, queries: int) -> dict[str, Any]:
    """One index written `written` vectors 10 at a time, the oldest evicted past `capacity`."""
    saved = faiss_index.COMPACT_MIN
    faiss_index.COMPACT_MIN = saved if rebuild else sys.maxsize
    try:
        rng = np.random.default_rng(0)
        idx = faiss_index.FaissIndex(CaseBankConfig(index="hnsw"), dim)
        q = _unit(rng, queries, dim)
        spent = 0.0
        for start in range(0, written, 10):
            vecs = _unit(rng, 10, dim)
            t = time.perf_counter()
            idx.add(np.arange(start, start + 10, dtype=np.int64), vecs)
            over = start + 10 - capacity
            if over > 0:
                idx.remove(range(over - 10, over))
            spent += time.perf_counter() - t
        search = []
        for row in q:
            t = time.perf_counter()
            idx.search(row[None], 32)
            search.append(time.perf_counter() - t)
    finally:
        faiss_index.COMPACT_MIN = saved
    return {
        "search_p50_ms": round(statistics.median(search) * 1e3, 4),
        "write_evict_ms_per_decision": round(spent / (written / 10) * 1e3, 4),
        "vectors_in_index": int(idx.index.ntotal),
        "live": idx.ntotal,
    }


def measure(
    written: int = 100_000, capacity: int = 10_000, dim: int = 64, queries: int = 200
) -> dict[str, Any]:
    """Both variants (module docstring) and the search ratio, the baseline first."""
    base = _variant(False, written, capacity, dim, queries)
    new = _variant(True, written, capacity, dim, queries)
    return {
        "config": {"written": written, "capacity": capacity, "dim": dim, "queries": queries},
        "tombstones_kept": base,
        "rebuilt": new,
        "search_ratio": round(base["search_p50_ms"] / max(new["search_p50_ms"], 1e-9), 1),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(measure(), indent=2) + "\n")
