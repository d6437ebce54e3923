"""Which part of the served items scorer's score ranks well? A probe of one in-process run.

The items scorer's policy scores a pool item by Q(s, item) + w * r(s, item) + vote(item)
(`recsys.rec.scorers.items`: the soft-Q network over the evidence features, the weighted cross
model, the case memory's vote). This probe runs one soft-q run of the online benchmark
(`bench.online.bench.run_one`, the served model as configured) and, at every warm decision,
ranks the decision's pool by each part alone and by their sums, and values each ranking's top
`list_size` items with the simulator's exact expected reward (theta[k] * value, what the
benchmark's `expected` figure sums). `truth` ranks the pool by those values: the best list
inside the pool. All rankings are of the same states and pools (the served run's), so they
say which part points where, not how a policy ranked by that part alone would have learned.

It wraps `ItemsScorer.cross_bias`, `MemoryLoop.decide` and `UserPoolSimulator.item_values` for
the duration of the run (and restores them); the run itself is unchanged. Usage:

    python -m bench.online.score_parts --simulator planted --seed 5 --interactions 6000 --out DIR

writes `DIR/parts.json` (one row per warm decision) and prints the mean of each ranking per
window around the taste shift.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.online.bench import OnlineConfig, run_one
from bench.sim.base import UserPoolSimulator
from recsys.loop import MemoryLoop
from recsys.rec.scorers.items import ItemsScorer

__all__ = ["PARTS", "probe", "windows"]

PARTS = ("Q", "r", "vote", "Q+r", "served", "truth")
"""The rankings: each part alone, Q + r, the served score (Q + r + vote), the truth."""


@contextmanager
def _probed(rows: list[dict[str, float]]) -> Iterator[None]:
    """The three wrappers of the module docstring, appending one row per warm decision."""
    cross_bias, decide, item_values = (
        ItemsScorer.cross_bias,
        MemoryLoop.decide,
        UserPoolSimulator.item_values,
    )
    seen: dict[str, Any] = {}
    step = [0]

    def probe_bias(self: ItemsScorer, rec: Any, req: Any, cands: Any) -> Any:
        r = cross_bias(self, rec, req, cands)
        seen.clear()
        seen["ids"] = [rec.items.ids[int(i)] for i in cands.case_ids]
        seen["r"] = np.zeros(len(cands.case_ids)) if r is None else np.asarray(r, np.float64)
        seen["valid"] = np.asarray(cands.mask, bool)
        return r

    def probe_decide(
        self: MemoryLoop,
        state: Any,
        cands: Any,
        m: int,
        greedy: bool = False,
        bias: Any = None,
        window: Any = None,
    ) -> Any:
        if "ids" in seen:
            seen["q"] = np.asarray(self.learner.scores(state, cands), np.float64)
            b = np.zeros(len(seen["r"])) if bias is None else np.asarray(bias, np.float64)
            seen["vote"] = b - seen["r"]
            seen["q_weight"] = 1.0 if window is None else float(window.q_weight)
        return decide(self, state, cands, m, greedy=greedy, bias=bias, window=window)

    def probe_values(self: UserPoolSimulator, user_id: str) -> np.ndarray:
        values = item_values(self, user_id)
        if "q" in seen:
            rows.append({"t": float(step[0]), **_rankings(self, seen, values)})
        seen.clear()
        step[0] += 1
        return values

    ItemsScorer.cross_bias = probe_bias  # type: ignore[method-assign]
    MemoryLoop.decide = probe_decide  # type: ignore[method-assign]
    UserPoolSimulator.item_values = probe_values  # type: ignore[method-assign]
    try:
        yield
    finally:
        ItemsScorer.cross_bias = cross_bias  # type: ignore[method-assign]
        MemoryLoop.decide = decide  # type: ignore[method-assign]
        UserPoolSimulator.item_values = item_values  # type: ignore[method-assign]


def _rankings(sim: UserPoolSimulator, seen: dict[str, Any], values: np.ndarray) -> dict[str, float]:
    """The exact expected reward of the top of the pool by each ranking of `PARTS`."""
    ids, _ = sim.catalogue()
    row_of = {s: i for i, s in enumerate(ids)}
    ok = seen["valid"]
    pool = np.array([row_of[s] for s in seen["ids"]], np.int64)[ok]
    theta = sim.examination()
    vals = values[pool]
    q, r, vote = seen["q"][ok], seen["r"][ok], seen["vote"][ok]
    served = seen.get("q_weight", 1.0) * q + r + vote  # Q weighs 0 in a drift alarm's window
    parts = {"Q": q, "r": r, "vote": vote, "Q+r": q + r, "served": served, "truth": vals}
    k = min(len(theta), len(pool))
    out = {}
    for name, score in parts.items():
        top = np.argsort(-score, kind="stable")[:k]
        out[name] = float((theta[:k] * vals[top]).sum())
    return out


def probe(cfg: OnlineConfig, seed: int) -> list[dict[str, float]]:
    """One soft-q run of `cfg` on `seed` (never from the cache: a cached run has nothing to
    probe), one row per warm decision: {"t", *PARTS}."""
    cache = cfg.workdir / "runs" / f"{cfg.key('soft-q', seed)}.npz"
    if cache.exists():
        raise ValueError(f"{cache} is cached: pass a fresh workdir so the run is played")
    rows: list[dict[str, float]] = []
    with _probed(rows):
        run_one(cfg, "soft-q", seed)
    return rows


def windows(rows: list[dict[str, float]], shift: int, n: int) -> list[tuple[str, dict[str, float]]]:
    """The mean of each ranking per window: the last 1,000 decisions before the shift, 0-250,
    250-500, 500-1,000 and 1,000-2,000 after it, and the last 20% of the run."""
    t = np.array([x["t"] for x in rows])
    spans = [
        ("before -1,000..0", shift - 1000, shift),
        ("after 0..250", shift, shift + 250),
        ("after 250..500", shift + 250, shift + 500),
        ("after 500..1,000", shift + 500, shift + 1000),
        ("after 1,000..2,000", shift + 1000, shift + 2000),
        ("last 20%", int(0.8 * n), n),
    ]
    out = []
    for label, a, b in spans:
        sel = [x for x, keep in zip(rows, (t >= a) & (t < b), strict=True) if keep]
        if sel:
            out.append((label, {p: float(np.mean([x[p] for x in sel])) for p in PARTS}))
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.online.score_parts` (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulator", default="planted")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--interactions", type=int, default=6000)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    cfg = OnlineConfig(
        simulator=a.simulator,
        interactions=a.interactions,
        seeds=(a.seed,),
        methods=("soft-q",),
        ope=False,
        workdir=a.out / "work",
    )
    cfg.validate()
    rows = probe(cfg, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "parts.json").write_text(json.dumps(rows))
    shift = int(cfg.interactions * cfg.shift_at)
    print(f"{'window':20s} " + " ".join(f"{p:>7s}" for p in PARTS))
    for label, means in windows(rows, shift, cfg.interactions):
        print(f"{label:20s} " + " ".join(f"{means[p]:7.3f}" for p in PARTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
