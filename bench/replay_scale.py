"""Replay throughput by engine: training decisions/s single-process, Ray with 1 worker and Ray
with W workers, on one world, side by side with ratios to single-process.

    python -m bench.replay_scale --passes 2 --max-decisions 600

Single-process: `run_pass` over the training decisions with learning on (what a pass of
`run_memory_mode` does). Ray: the training passes of `RayMemoryRunner` (actor start-up and
the in-process validation and test passes are not counted; start-up is reported apart).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import numpy as np

from training.config import TrainConfig

__all__ = ["main", "replay_scale"]


def replay_scale(cfg: TrainConfig, passes: int, workers: list[int]) -> dict[str, Any]:
    """{engine: {"decisions_per_s", "pass_s", "startup_s", "ratio", "ndcg@10"}}."""
    import torch

    from training.distributed import DistributedConfig, RayMemoryRunner, ensure_ray
    from training.evaluate import train_decisions, validation_decisions
    from training.modes import _learner, recommender_for
    from training.prepare import prepare_world
    from training.replay_env import build_split_parts, run_pass

    torch.set_num_threads(1)
    cfg = dataclasses.replace(cfg, iterations=passes)
    world, _, _ = prepare_world(cfg)
    parts = build_split_parts(world, cfg)
    valid = validation_decisions(world, cfg.max_valid_decisions)
    train_idx = train_decisions(world, cfg.max_train_decisions, 0, without=valid)
    out: dict[str, Any] = {"decisions_per_pass": len(train_idx), "passes": passes}
    learner = _learner(cfg, "soft-q", 0, world.dim)
    rec = recommender_for(parts.train, cfg, learner, None, "soft-q")
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        run_pass(world, rec, cfg, train_idx, True, False, 0.0, np.random.default_rng(0))
        times.append(time.perf_counter() - t0)
    base = len(train_idx) * passes / sum(times)
    out["local"] = {"decisions_per_s": base, "pass_s": times, "startup_s": 0.0, "ratio": 1.0}
    started = ensure_ray(DistributedConfig(workers=max(workers)))
    try:
        for w in workers:
            runner = RayMemoryRunner(DistributedConfig(workers=w))
            runner(world, parts, cfg, "soft-q", 0, None)
            st = runner.stats[-1]
            rate = len(train_idx) * passes / sum(st.pass_s)
            out[f"ray-{w}"] = {
                "decisions_per_s": rate,
                "pass_s": st.pass_s,
                "startup_s": st.startup_s,
                "ratio": rate / base,
                "learner_busy_s": st.learner["busy_s"],
            }
    finally:
        if started:
            import ray

            ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse, run, print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=2, help="Training passes per engine.")
    ap.add_argument("--max-decisions", type=int, default=600, help="Training decisions/pass.")
    ap.add_argument("--workers", default="1,2", help="Comma-separated Ray worker counts.")
    ap.add_argument("--text-encoder", default="hashing", help="hashing | use.")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    a = ap.parse_args(argv)
    cfg = TrainConfig(
        max_train_decisions=a.max_decisions,
        max_valid_decisions=50,
        max_eval_decisions=50,
    )
    text = dataclasses.replace(cfg.core.text, kind=a.text_encoder, dim=64)
    cfg = dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, text=text))
    res = replay_scale(cfg, a.passes, [int(w) for w in a.workers.split(",") if w])
    if a.json:
        print(json.dumps(res))
        return
    print(f"{res['decisions_per_pass']} training decisions x {res['passes']} passes")
    print(f"{'engine':<8} {'dec/s':>8} {'ratio':>6} {'startup s':>10}  pass s")
    for k, v in res.items():
        if isinstance(v, dict):
            passes = " ".join(f"{s:.1f}" for s in v["pass_s"])
            rate, ratio, start = v["decisions_per_s"], v["ratio"], v["startup_s"]
            print(f"{k:<8} {rate:8.1f} {ratio:6.2f} {start:10.1f}  {passes}")


if __name__ == "__main__":
    main()
