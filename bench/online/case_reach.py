"""How much of the items pool the case memory reaches: per recommend of an in-process soft-q run,
the retrieved cases, those proposing an item the list may show (not one the user already acted
on), their distinct items, the pool size and the pool items with case evidence.

    python -m bench.online.case_reach --simulator planted --interactions 2000 --seed 5

prints the means over the first quarter, the second quarter and the second half of the run
(the run itself is `memento bench online`'s soft-q run; nothing is cached)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import recsys.rec.scorers.items as items_scorer
from bench.online.bench import OnlineConfig, run_one
from recsys.rec.item_features import CaseSums, ItemEvidence


def case_reach(simulator: str, interactions: int, seed: int) -> list[dict[str, float]]:
    """Per part of the run (module docstring), the mean of each count."""
    rows: list[tuple[int, int, int, int, int]] = []
    sums = items_scorer.case_sums

    def counted(pool: Sequence[int], ev: ItemEvidence) -> CaseSums:
        out = sums(pool, ev)
        proposed = [r for rs in ev.case_rows for r in rs]
        rows.append(
            (len(ev.case_rows), sum(1 for rs in ev.case_rows if rs), len(set(proposed)),
             len(pool), len(out.support))
        )  # fmt: skip
        return out

    items_scorer.case_sums = counted
    try:
        with tempfile.TemporaryDirectory(prefix="memento-reach-") as tmp:
            cfg = OnlineConfig(
                simulator=simulator, interactions=interactions, seeds=(seed,),
                methods=("soft-q",), ope=False, workdir=Path(tmp),
            )  # fmt: skip
            run_one(cfg, "soft-q", seed)
    finally:
        items_scorer.case_sums = sums
    a = np.array(rows, np.float64)
    n = len(a)
    names = ("retrieved", "proposing_a_showable_item", "distinct_items", "pool", "pool_supported")
    return [
        {
            "from": lo,
            "to": hi,
            **{k: float(v) for k, v in zip(names, a[lo:hi].mean(0), strict=True)},
        }
        for lo, hi in ((0, n // 4), (n // 4, n // 2), (n // 2, n))
    ]


def main() -> None:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulator", default="planted")
    ap.add_argument("--interactions", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    for part in case_reach(args.simulator, args.interactions, args.seed):
        print(
            ", ".join(
                f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in part.items()
            )
        )


if __name__ == "__main__":
    main()
