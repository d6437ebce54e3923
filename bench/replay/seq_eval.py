"""The sequence policy's setting search on validation (MovieLens-100K leave-last-out, train ->
valid, seed 0): each named setting of `bench.replay.seq_method.GRID` trained `--epochs` epochs,
validation NDCG@10 of the greedy policy (no memory) after every epoch; the best (setting,
epoch) among the settings whose policy reads Q is printed. That choice is
`bench.replay.config.SeqMethodConfig`'s default; the test figures come from
`memento bench replay` (`bench.replay.seq_method`), never from here.

    OMP_NUM_THREADS=1 python -m bench.replay.seq_eval --grid gru,gru-prior --work .cache/seq_eval

Each grid run is cached as JSON under --work (a rerun skips what is done).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.replay.config import SeqMethodConfig
from bench.replay.seq_method import GRID, fit_config, validation_evaluator
from bench.replay.seq_rows import load_protocol
from training.seq_fit import fit_seq

log = logging.getLogger(__name__)


def _grid_run(name: str, epochs: int, work: Path) -> dict[str, Any]:
    """The validation curve of one setting (cached)."""
    path = work / f"grid_{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    proto = load_protocol()
    cfg = fit_config(SeqMethodConfig(setting=name, epochs=epochs), len(proto.item_ids), 0)
    res = fit_seq(cfg, proto.train_seqs, validation_evaluator(proto.valid, cfg.sqn))
    out = {"curve": res.curve, "train_seconds": res.train_seconds}
    path.write_text(json.dumps(out))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the grid and print its JSON with the chosen (setting, epochs)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=".cache/seq_eval", help="folder of cached grid runs")
    ap.add_argument("--grid", default=",".join(GRID), help="grid entries to try (comma list)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of each grid run")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.grid.split(",") if n]
    grid = {n: _grid_run(n, args.epochs, work) for n in names}
    soft = [n for n in names if GRID[n].get("q_weight", 1.0) > 0]  # the policy reads Q
    best = max(
        ((n, row["epoch"], row["valid/q"]) for n in soft for row in grid[n]["curve"]),
        key=lambda t: t[2],
    )
    keep = ("epoch", "valid")
    result = {
        "grid": {
            n: [{k: round(v, 4) for k, v in r.items() if k.startswith(keep)} for r in g["curve"]]
            for n, g in grid.items()
        },
        "chosen": {"setting": best[0], "epochs": int(best[1]), "valid_ndcg@10": best[2]},
    }
    print(json.dumps(result, indent=1))  # a script's output, not library logging
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
