"""`memento bench replay --json`: the benchmark's JSON contract (`bench_payload`), rendered as
markdown by `bench.report.ci_markdown`."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["bench_payload"]


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def bench_payload(result: Any, cfg: Any, caps: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's JSON contract: `n_decisions`, `results[method]` (`ndcg@10`,
    `ndcg@10_ci`, `hr@10`, `hr@10_ci`, `warm_ndcg@10`, `warm_ndcg@10_ci`, seed means of the other
    metrics, the validation learning curve), `paired[method]` (soft-q minus method on NDCG@10
    over the same rows: `diff`, `ci`, `p`, `p_holm`, `primary`, `warm_diff`, `warm_ci`),
    `primary` (the pre-declared comparison's peer), `tuned` (each tuned peer's setting) and
    `info[method]`; per method also `ndcg@10_per_seed` and, with an item pool, `pool_recall`."""
    res: dict[str, Any] = {}
    for name, ci in result.summary.items():
        m = result.metrics.get(name, {})
        curve = result.curves.get(name)
        row = {
            k: _clean(v) if not isinstance(v, list) else [_clean(x) for x in v]
            for k, v in ci.items()
        }
        for k in (
            "mrr",
            "reward_per_decision",
            "coverage@10",
            "ndcg@10_std",
            "pool_recall",
            "pool_size",
        ):
            if k in m:
                row["seed_std" if k == "ndcg@10_std" else k] = _clean(m[k])
        row["seeds"] = len(result.per_seed.get(name, []))
        row["curve"] = [sum(c) / len(c) for c in zip(*curve, strict=False)] if curve else []
        res[name] = row
    n = {int(v["n_rows"]) for v in result.summary.values()}
    return {
        "dataset": result.dataset,
        "split": cfg.train.split,
        "n_decisions": n.pop() if len(n) == 1 else sorted(n),
        "n_warm": max((int(v["n_warm"]) for v in result.summary.values()), default=0),
        "seeds": list(cfg.seeds),
        "peer_seeds": list(cfg.peer_seeds),
        "results": res,
        "paired": {
            k: {
                kk: _clean(vv) if not isinstance(vv, list) else [_clean(x) for x in vv]
                for kk, vv in v.items()
            }
            for k, v in result.paired.items()
        },
        "info": result.info,
        "primary": next((k for k, v in result.paired.items() if v.get("primary")), None),
        "tuned": {m: v[0]["setting"] for m, v in result.info.items() if v and "setting" in v[0]},
        "table": str(result.paths.get("table")),
        "plots": [
            str(result.paths[k]) for k in ("learning_curve", "comparison") if k in result.paths
        ],
        "run_id": result.run_id,
        "elapsed_s": round(result.elapsed_s, 1),
        "config": caps,
    }
