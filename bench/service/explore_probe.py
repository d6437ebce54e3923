"""How exploratory the served list is after `make run`: the served champion's first position.

Starts the real service as a plain `memento serve` would (the registered champion, sampling
policy, LLM off) on a fresh store, sends the held-out decisions of the `make run` dataset as
`POST /v1/recommend` (each under its own user id, with the decision's history as
`recent_events` and its time as `at`), and after each reads `/metrics`:
`memento_policy_entropy` (the entropy of the policy's first-position distribution of that
recommend) and the greedy top-1 counters. Also counts the slots the responses mark
`explored`.

    python -m bench.service.explore_probe --decisions 100

prints one JSON object: mean / median entropy (nats), the greedy top-1 share, explored slots per
list and the share of lists whose items come in descending score order outside the explored
slots (the list in policy order)."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

READ_KEY = "probe-read-key"
WRITE_KEY = "probe-write-key"


def run_probe(decisions: int, workdir: Path) -> dict[str, Any]:
    """The probe (module docstring) over the first `decisions` held-out decisions."""
    import httpx

    from bench.parity import recommend_body
    from serving.process import ServerProcess
    from serving.testing import metric
    from training.config import TrainConfig
    from training.evaluate import eval_decisions
    from training.prepare import prepare_world
    from training.replay_env import request_at

    world, _, _ = prepare_world(TrainConfig())
    env = {
        "MEMENTO_DB_PATH": str(workdir / "probe.sqlite3"),
        "MEMENTO_CHECKPOINT_DIR": str(workdir / "checkpoints"),
        "MEMENTO_POLICY": "sample",
        "MEMENTO_LLM": "none",
        "MEMENTO_API_KEY": WRITE_KEY,
        "MEMENTO_READ_API_KEY": READ_KEY,
    }
    entropy: list[float] = []
    explored: list[int] = []
    ordered = 0
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    with (
        ServerProcess(env, log=workdir / "serve.log").start(timeout_s=180.0) as server,
        httpx.Client(base_url=server.url, timeout=60.0, headers=headers) as http,
    ):
        for j in eval_decisions(world, decisions, 0).tolist():
            req = request_at(world, int(j))
            r = http.post("/v1/recommend", json=recommend_body(req, f"probe-{req.user_id}-{j}", 10))
            r.raise_for_status()
            items = r.json()["items"]
            explored.append(sum(bool(i.get("explored")) for i in items))
            kept = [float(i["score"]) for i in items if not i.get("explored")]
            ordered += all(a >= b for a, b in itertools.pairwise(kept))
            entropy.append(metric(http, "memento_policy_entropy"))
        greedy = metric(http, "memento_policy_top1_greedy_total")
        total = metric(http, "memento_policy_top1_total")
        model = next((ln for ln in (workdir / "serve.log").read_text().splitlines()
                      if "serving registered model" in ln), "")  # fmt: skip
    return {
        "decisions": len(entropy),
        "model": model.split("serving registered model", 1)[-1].strip(),
        "entropy_mean_nats": statistics.fmean(entropy) if entropy else None,
        "entropy_median_nats": statistics.median(entropy) if entropy else None,
        "greedy_top1_share": greedy / total if total > 0 else None,
        "explored_slots_per_list": statistics.fmean(explored) if explored else None,
        "lists_in_policy_order": ordered / len(entropy) if entropy else None,
    }


def main() -> None:
    """Command line: `python -m bench.service.explore_probe [--decisions N]`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="memento-probe-") as tmp:
        print(json.dumps(run_probe(args.decisions, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
