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
window around the taste shift. With a `stream` list, `probe` also records what the cross model
(`recsys.rec.item_crosses`) saw, in the order it saw it: each warm decision's pool and history
with the pool items' exact values, each training step's shown items, history, rewards and
positions, each restart (`bench.online.cross_replay` plays it to other settings of the model);
`main` writes it to `DIR/crosses.jsonl.gz`.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.online.bench import OnlineConfig, run_one
from bench.sim.base import UserPoolSimulator
from recsys.loop import MemoryLoop
from recsys.rec.item_crosses import ItemCrosses
from recsys.rec.scorers.items import ItemsScorer, history_ids

__all__ = ["COLUMNS", "PARTS", "probe", "read_stream", "span_means", "windows", "write_stream"]

PARTS = ("Q", "r", "vote", "Q+r", "served", "truth")
"""The rankings: each part alone, Q + r, the served score (Q + r + vote), the truth."""

COLUMNS = (*PARTS, "catalogue")
"""A row's figures: the rankings, and the best list of the whole catalogue (the benchmark's
oracle: how much of it the pool holds)."""


@contextmanager
def _probed(
    rows: list[dict[str, float]], stream: list[dict[str, Any]] | None = None
) -> Iterator[None]:
    """The three wrappers of the module docstring, appending one row per warm decision (and,
    with `stream`, two more: the cross model's training steps and restarts)."""
    cross_bias, decide, item_values = (
        ItemsScorer.cross_bias,
        MemoryLoop.decide,
        UserPoolSimulator.item_values,
    )
    learn_crosses, restart = ItemsScorer.learn_crosses, ItemCrosses.restart
    seen: dict[str, Any] = {}
    step = [0]

    def probe_bias(self: ItemsScorer, rec: Any, req: Any, cands: Any) -> Any:
        r = cross_bias(self, rec, req, cands)
        seen.clear()
        seen["ids"] = [rec.items.ids[int(i)] for i in cands.case_ids]
        seen["r"] = np.zeros(len(cands.case_ids)) if r is None else np.asarray(r, np.float64)
        seen["valid"] = np.asarray(cands.mask, bool)
        if stream is not None:  # scored before any step that follows: the event goes in now
            if not stream:
                catalogue = {"ids": rec.items.ids, "titles": rec.items.titles}
                stream.append({"kind": "catalogue", **catalogue})
            pool = [i for i, k in zip(seen["ids"], seen["valid"], strict=True) if k]
            hist = history_ids([e for e in req.events if e.ts <= req.now])
            seen["event"] = {"kind": "score", "pool": pool, "hist": hist}
            stream.append(seen["event"])
        return r

    def probe_learn(self: ItemsScorer, rec: Any, cands: Any, history: Any, shown: Any) -> Any:
        if stream is not None and shown:
            stream.append(
                {
                    "kind": "learn",
                    "items": [rec.items.ids[int(cands.case_ids[r])] for r, _, _ in shown],
                    "hist": history_ids(history),
                    "rewards": [float(x) for _, _, x in shown],
                    "positions": [int(k) for _, k, _ in shown],
                }
            )
        return learn_crosses(self, rec, cands, history, shown)

    def probe_restart(self: ItemCrosses) -> None:
        if stream is not None:
            stream.append({"kind": "restart"})
        restart(self)

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
            if "event" in seen:
                ids, _ = self.catalogue()
                value_of = dict(zip(ids, values.tolist(), strict=True))
                seen["event"].update(t=step[0], values=[value_of[i] for i in seen["event"]["pool"]])
                stream[0].setdefault("theta", self.examination().tolist())  # type: ignore[index]
        seen.clear()
        step[0] += 1
        return values

    ItemsScorer.cross_bias = probe_bias  # type: ignore[method-assign]
    MemoryLoop.decide = probe_decide  # type: ignore[method-assign]
    UserPoolSimulator.item_values = probe_values  # type: ignore[method-assign]
    ItemsScorer.learn_crosses = probe_learn  # type: ignore[method-assign]
    ItemCrosses.restart = probe_restart  # type: ignore[method-assign]
    try:
        yield
    finally:
        ItemsScorer.cross_bias = cross_bias  # type: ignore[method-assign]
        MemoryLoop.decide = decide  # type: ignore[method-assign]
        UserPoolSimulator.item_values = item_values  # type: ignore[method-assign]
        ItemsScorer.learn_crosses = learn_crosses  # type: ignore[method-assign]
        ItemCrosses.restart = restart  # type: ignore[method-assign]
        if stream is not None:  # a score event never valued (no warm decision) says nothing
            stream[:] = [e for e in stream if e["kind"] != "score" or "values" in e]


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
    best = np.sort(values)[::-1][: len(theta)]
    out["catalogue"] = float((theta[: len(best)] * best).sum())
    return out


def probe(
    cfg: OnlineConfig, seed: int, stream: list[dict[str, Any]] | None = None
) -> list[dict[str, float]]:
    """One soft-q run of `cfg` on `seed` (never from the cache: a cached run has nothing to
    probe), one row per warm decision: {"t", *COLUMNS}; `stream` (a list) receives the cross
    model's events (module docstring): first the catalogue, then "score", "learn" and
    "restart" events in the order they happened."""
    cache = cfg.workdir / "runs" / f"{cfg.key('soft-q', seed)}.npz"
    if cache.exists():
        raise ValueError(f"{cache} is cached: pass a fresh workdir so the run is played")
    rows: list[dict[str, float]] = []
    with _probed(rows, stream):
        run_one(cfg, "soft-q", seed)
    return rows


def write_stream(path: Path, stream: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """`stream` as gzipped JSON lines, `meta` (the run's settings) first."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for event in [{"kind": "meta", **meta}, *stream]:
            f.write(json.dumps(event) + "\n")


def read_stream(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, events) of a `write_stream` file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    if not events or events[0].get("kind") != "meta":
        raise ValueError(f"{path} is not a cross-model stream (no meta line)")
    return events[0], events[1:]


Span = tuple[str, int, int]
"""A window of decisions: (label, first, end) with end excluded."""


def span_means(
    t: np.ndarray, series: dict[str, np.ndarray], spans: list[Span]
) -> list[tuple[str, dict[str, float]]]:
    """The mean of each series (aligned with the decision numbers `t`) per span, spans without
    decisions left out."""
    out = []
    for label, a, b in spans:
        sel = (t >= a) & (t < b)
        if sel.any():
            out.append((label, {k: float(v[sel].mean()) for k, v in series.items()}))
    return out


def windows(rows: list[dict[str, float]], shift: int, n: int) -> list[tuple[str, dict[str, float]]]:
    """The mean of each ranking per window: the last 1,000 decisions before the shift, 0-250,
    250-500, 500-1,000 and 1,000-2,000 after it, and the last 20% of the run."""
    spans = [
        ("before -1,000..0", shift - 1000, shift),
        ("after 0..250", shift, shift + 250),
        ("after 250..500", shift + 250, shift + 500),
        ("after 500..1,000", shift + 500, shift + 1000),
        ("after 1,000..2,000", shift + 1000, shift + 2000),
        ("last 20%", int(0.8 * n), n),
    ]
    t = np.array([x["t"] for x in rows])
    return span_means(t, {p: np.array([x[p] for x in rows]) for p in COLUMNS}, spans)


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
    stream: list[dict[str, Any]] = []
    rows = probe(cfg, a.seed, stream)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "parts.json").write_text(json.dumps(rows))
    shift = int(cfg.interactions * cfg.shift_at)
    meta = {"simulator": a.simulator, "seed": a.seed, "interactions": a.interactions}
    write_stream(a.out / "crosses.jsonl.gz", stream, {**meta, "shift": shift})
    print(f"{'window':20s} " + " ".join(f"{p:>9s}" for p in COLUMNS))
    for label, means in windows(rows, shift, cfg.interactions):
        print(f"{label:20s} " + " ".join(f"{means[p]:9.3f}" for p in COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
