"""Measure the sequence soft-Q policy on MovieLens-100K leave-last-out under the fixed rule.

    OMP_NUM_THREADS=1 python -m bench.replay.seq_eval --seeds 0,1,2 --work .cache/seq_eval

Steps, each cached as JSON under --work (a rerun skips what is done; seeds may run in parallel
processes and a last call with every seed prints the table):
1. peers: EASE (lambda) and item-kNN (recent, decay, shrink) chosen on train -> valid, refit on
   train + valid, scored on test (`bench.replay.seq_rows.select_peer`).
2. grid (seed 0, train -> valid): each setting of `GRID` trained `--epochs` epochs, validation
   NDCG@10 of the greedy policy argmax Q after every epoch; the best (setting, epoch) is kept.
3. per seed: the chosen setting trained on train for the chosen epochs (its validation curve
   with bootstrap CIs), the case memory's K and weight w chosen on valid, then the same setting
   refit on train + valid and scored on the 943 test rows: `soft-q` = policy logits + w * vote,
   `q-only` (w = 0), `ce-head` (the supervised head of the same model), `cases-only` (the vote
   alone, ties by popularity).
Printed JSON: peers, grid, choices, per-seed figures, the seed-mean table with bootstrap CIs
and paired CIs of soft-q against every other row (the primary one: against the peer with the
best validation NDCG).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.replay.seq_rows import EvalRows, Protocol, load_protocol, row_metrics, select_peer
from bench.stats import RowMetrics, bootstrap_ci, compare, paired_ci, two_level_ci
from recsys.rec.seq import CaseVote, SeqModelConfig, histories_batch, windows
from recsys.rec.seq.model import SeqQModel, last_states, transition_states
from recsys.rl.sqn import SQNConfig, policy_logits
from training.seq_fit import SeqFitConfig, fit_seq

log = logging.getLogger(__name__)

GRID: dict[str, dict[str, Any]] = {
    "tf": {},
    "gru": {"encoder": "gru", "layers": 1},
    "tf-ce-only": {"q_weight": 0.0, "cql_weight": 0.0},
    "tf-q0.2": {"q_weight": 0.2},
    "tf-drop0.5": {"dropout": 0.5},
    "tf-gamma0.9": {"gamma": 0.9},
    "tf-alpha0.3": {"alpha": 0.3},
    "gru-prior": {"encoder": "gru", "layers": 1, "prior": True, "cql_weight": 0.0},
    "tf-prior": {"prior": True, "cql_weight": 0.0},
    "gru-prior-drop0.5": {
        "encoder": "gru",
        "layers": 1,
        "prior": True,
        "cql_weight": 0.0,
        "dropout": 0.5,
    },
}
"""Named settings tried on validation (overrides of `_config`'s defaults)."""

KS = (10, 30, 100)
"""Case-memory neighbour counts tried on validation."""
WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Case-memory vote weights (added to the policy logits) tried on validation."""


def _config(n_items: int, name: str, epochs: int, seed: int) -> SeqFitConfig:
    """The fit settings of a named grid entry."""
    o = GRID[name]
    mfields = SeqModelConfig.__dataclass_fields__
    qfields = SQNConfig.__dataclass_fields__
    model = SeqModelConfig(n_items=n_items, **{k: v for k, v in o.items() if k in mfields})
    sqn = replace(SQNConfig(cql_weight=1.0), **{k: v for k, v in o.items() if k in qfields})
    fit = {k: v for k, v in o.items() if k not in mfields and k not in qfields}
    base = {"batch_size": 16, "lr": 2e-3} | fit
    return SeqFitConfig(model=model, sqn=sqn, epochs=epochs, seed=seed, **base)


def _heads(
    model: SeqQModel, rows: EvalRows, sqn: SQNConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states (R, d), CE logits (R, N), policy logits from Q = min(Q1, Q2) (R, N))."""
    hb = histories_batch(rows.histories, model.cfg.max_len, model.cfg.n_gaps)
    h = last_states(model, hb)
    with torch.no_grad():
        hd = model.heads(h)
        q = policy_logits(hd.logits, torch.minimum(hd.q1, hd.q2), sqn)
    return h.numpy(), hd.logits.numpy(), q.numpy()


def _evaluator(rows: EvalRows, sqn: SQNConfig) -> Callable[[SeqQModel], dict[str, float]]:
    def evaluate(model: SeqQModel) -> dict[str, float]:
        _, logits, q = _heads(model, rows, sqn)
        nd_q = row_metrics(q, rows)[0]
        lo, hi = bootstrap_ci(nd_q)
        return {"valid/q": float(nd_q.mean()), "valid/q_lo": lo, "valid/q_hi": hi,
                "valid/ce": float(row_metrics(logits, rows)[0].mean())}  # fmt: skip

    return evaluate


def _memory(model: SeqQModel, seqs: Sequence[Any]) -> CaseVote:
    """A case bank of every transition state of `seqs` with what followed and when."""
    data = windows(list(seqs), model.cfg.max_len, model.cfg.n_gaps)
    states = transition_states(model, data).numpy()
    has = data.has_target
    mem = CaseVote(model.cfg.dim, model.cfg.n_items)
    mem.write(states, data.targets[has].numpy(), data.target_ts[has].numpy())
    return mem


def _unit(work: Path, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The cached result of `run`, computed and written once."""
    path = work / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = run()
    path.write_text(json.dumps(out))
    return out


def _peers(proto: Protocol) -> dict[str, Any]:
    out = {}
    for name in ("ease", "item-knn"):
        best, curve, (nd, hit) = select_peer(name, proto)
        out[name] = {"chosen": best, "valid": curve, "ndcg": nd.tolist(), "hit": hit.tolist()}
    return out


def _grid(proto: Protocol, name: str, epochs: int) -> dict[str, Any]:
    cfg = _config(len(proto.item_ids), name, epochs, 0)
    res = fit_seq(cfg, proto.train_seqs, _evaluator(proto.valid, cfg.sqn))
    return {"curve": res.curve, "train_seconds": res.train_seconds}


def _seed(proto: Protocol, name: str, epochs: int, seed: int) -> dict[str, Any]:
    cfg = _config(len(proto.item_ids), name, epochs, seed)
    res = fit_seq(cfg, proto.train_seqs, _evaluator(proto.valid, cfg.sqn))
    t0 = time.perf_counter()
    h, _, q = _heads(res.model, proto.valid, cfg.sqn)
    votes = _memory(res.model, proto.train_seqs).votes(h, proto.valid.ts, KS)
    mem_grid = {f"k={k},w={w}": float(row_metrics(q + w * votes[k], proto.valid)[0].mean())
                for k in KS for w in WEIGHTS}  # fmt: skip
    vote_grid = {k: float(row_metrics(votes[k], proto.valid)[0].mean()) for k in KS}
    memory_seconds = time.perf_counter() - t0
    best = max(mem_grid, key=lambda k: (mem_grid[k], -list(mem_grid).index(k)))
    k_full, w_full = int(best.split(",")[0][2:]), float(best.split(",")[1][2:])
    k_vote = max(KS, key=lambda k: (vote_grid[k], -KS.index(k)))
    refit = fit_seq(cfg, proto.trainval_seqs)
    h, logits, q = _heads(refit.model, proto.test, cfg.sqn)
    votes = _memory(refit.model, proto.trainval_seqs).votes(
        h, proto.test.ts, sorted({k_full, k_vote})
    )
    scores = {"soft-q": q + w_full * votes[k_full], "q-only": q,
              "ce-head": logits, "cases-only": votes[k_vote]}  # fmt: skip
    test = {}
    for m, s in scores.items():
        nd, hit = row_metrics(s, proto.test)
        test[m] = {"ndcg": nd.tolist(), "hit": hit.tolist()}
    return {"valid_curve": res.curve, "valid_train_seconds": res.train_seconds,
            "memory_valid": mem_grid, "vote_valid": vote_grid, "memory_seconds": memory_seconds,
            "chosen_memory": {"k": k_full, "w": w_full, "k_vote": k_vote},
            "refit_train_seconds": refit.train_seconds,
            "refit_train_cpu_seconds": refit.train_cpu_seconds, "test": test}  # fmt: skip


def _rows(nd: Sequence[float], hit: Sequence[float], users: np.ndarray) -> RowMetrics:
    return RowMetrics(users, np.asarray(nd), np.asarray(hit), np.zeros(len(users), bool))


def _table(proto: Protocol, peers: dict[str, Any], seeds: dict[int, dict[str, Any]]) -> dict:
    users = proto.test.users
    methods = ["soft-q", "q-only", "ce-head", "cases-only"]
    rows = {m: _rows(np.mean([s["test"][m]["ndcg"] for s in seeds.values()], 0),
                     np.mean([s["test"][m]["hit"] for s in seeds.values()], 0), users)
            for m in methods}  # fmt: skip
    for p, v in peers.items():
        rows[p] = _rows(v["ndcg"], v["hit"], users)
    summary, paired = compare(rows, reference="soft-q")
    best_peer = max(peers, key=lambda p: max(peers[p]["valid"].values()))
    per_seed = {}
    for s, r in seeds.items():
        fig = {m: float(np.mean(r["test"][m]["ndcg"])) for m in methods}
        d, ci = paired_ci(
            np.asarray(r["test"]["soft-q"]["ndcg"]), np.asarray(peers[best_peer]["ndcg"])
        )
        per_seed[s] = fig | {f"soft-q - {best_peer}": d, f"soft-q - {best_peer}_ci": list(ci)}
    soft = np.array([r["test"]["soft-q"]["ndcg"] for r in seeds.values()])  # (S, R)
    by_seed = {m: np.array([r["test"][m]["ndcg"] for r in seeds.values()]) for m in methods}
    two = {m: list(two_level_ci(x)) for m, x in by_seed.items()}  # seeds, then rows
    gap = soft - np.asarray(peers[best_peer]["ndcg"])[None]
    two[f"soft-q - {best_peer}"] = list(two_level_ci(gap))
    return {"summary": summary, "paired_vs_soft-q": paired, "best_valid_peer": best_peer,
            "two_level_ci": two,
            "primary": {"comparison": f"soft-q - {best_peer}", **paired[best_peer]},
            "per_seed_ndcg@10": per_seed}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the measurement and print its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="comma-separated seeds to fit and report")
    ap.add_argument("--work", default=".cache/seq_eval", help="folder of cached steps")
    ap.add_argument("--grid", default=",".join(GRID), help="grid entries to try (comma list)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of each grid run")
    ap.add_argument("--only", choices=["peers", "grid", "seeds", "all"], default="all")
    ap.add_argument("--out", default="", help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    proto = load_protocol()
    result: dict[str, Any] = {}
    if args.only in ("peers", "all"):
        peers = _unit(work, "peers", lambda: _peers(proto))
        result["peers"] = {
            p: {"chosen": v["chosen"], "valid": v["valid"]} for p, v in peers.items()
        }
    if args.only == "peers":
        return _emit(result, args.out)
    names = [n for n in args.grid.split(",") if n]
    grid = {n: _unit(work, f"grid_{n}", lambda n=n: _grid(proto, n, args.epochs)) for n in names}
    keep = ("epoch", "valid")
    result["grid"] = {
        n: [{k: round(v, 4) for k, v in row.items() if k.startswith(keep)} for row in g["curve"]]
        for n, g in grid.items()
    }
    result["grid_train_seconds"] = {n: g["train_seconds"] for n, g in grid.items()}
    soft = [n for n in names if _config(1, n, 1, 0).sqn.q_weight > 0]  # the policy reads Q
    best = max(
        ((n, row["epoch"], row["valid/q"]) for n in soft for row in grid[n]["curve"]),
        key=lambda t: t[2],
    )
    name, epochs = best[0], int(best[1])
    result["chosen"] = {"setting": name, "epochs": epochs, "valid_ndcg@10": best[2]}
    if args.only == "grid":
        return _emit(result, args.out)
    seeds = {
        int(s): _unit(
            work, f"seed_{s}_{name}_e{epochs}", lambda s=int(s): _seed(proto, name, epochs, s)
        )
        for s in args.seeds.split(",")
    }
    result["seeds"] = {s: {k: v for k, v in r.items() if k != "test"} for s, r in seeds.items()}
    if args.only == "all":
        result["test"] = _table(proto, peers, seeds)
    return _emit(result, args.out)


def _emit(result: dict[str, Any], out: str) -> dict[str, Any]:
    text = json.dumps(result, indent=1, default=float)
    if out:
        Path(out).write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
