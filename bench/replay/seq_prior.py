"""The sequence policy's item prior in a replay comparison: which peer matrix, fitted on which
rows, with which weight.

The prior's candidates are the in-process item x item peers (`PRIOR_PEERS`) with the settings
their own validation search chooses (`bench.replay.tuning.tune_peer`: the same grid and rows
as the peers of the comparison, so the prior is never tuned more than the peer it is). On the
validation rows the matrix is fitted on the fit rows; for test it is refitted on the refit rows
(train + valid under leave-last-out), as the peers are. Which peer and the weight v are chosen
on the validation rows, after the case memory's K and w (`SeqPolicy.combine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import polars as pl

from bench.replay.seq_rows import EvalRows, row_metrics
from bench.replay.tuning import TuningConfig, build_peer, tune_peer, validation_frames
from recsys.rec.seq.item_prior import ItemPrior
from recsys.rec.seq.policy import SeqPolicy, SeqScores

__all__ = ["PRIOR_PEERS", "PriorCandidates", "choose_prior", "fit_prior", "tuned_prior_settings"]

PRIOR_PEERS: tuple[str, ...] = ("ease", "rp3beta")
"""Peers whose item x item matrix may serve as the sequence policy's prior."""


def tuned_prior_settings(
    split: Any,
    item_ids: np.ndarray,
    exclude_seen: bool,
    peers: Sequence[str] = PRIOR_PEERS,
    known: dict[str, dict[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """{peer: its validation-chosen setting}: the `known` ones (the comparison's peers already
    searched), the others searched here the same way."""
    known = known or {}
    fit, valid = validation_frames(split)
    cfg = TuningConfig()
    searched = {
        p: tune_peer(p, fit, valid, cfg, item_ids, exclude_seen).setting
        for p in peers
        if p not in known
    }
    return {p: known[p] if p in known else searched[p] for p in peers}


class PriorCandidates:
    """The candidate priors of one split, each matrix fitted once and shared by every seed:
    on the fit rows (read on the validation rows) and on the refit rows (read on the test
    rows)."""

    def __init__(
        self,
        settings: dict[str, dict[str, float]],
        fit: pl.DataFrame,
        refit: pl.DataFrame,
        item_ids: np.ndarray,
    ) -> None:
        self.settings = settings
        """{peer: its validation-chosen setting}."""
        self._rows = {"valid": fit, "test": refit}
        self._item_ids = item_ids
        self._fitted: dict[tuple[str, str], ItemPrior] = {}

    def prior(self, name: str, side: Literal["valid", "test"]) -> ItemPrior:
        """Peer `name`'s prior for the validation or the test rows (fitted on first use)."""
        key = (name, side)
        if key not in self._fitted:
            rows = self._rows[side]
            self._fitted[key] = fit_prior(name, self.settings[name], rows, self._item_ids)
        return self._fitted[key]

    def valid(self) -> dict[str, ItemPrior]:
        """{peer: its prior for the validation rows}."""
        return {n: self.prior(n, "valid") for n in self.settings}


def fit_prior(
    name: str, setting: dict[str, float], rows: pl.DataFrame, item_ids: np.ndarray
) -> ItemPrior:
    """Peer `name` with `setting` fitted on `rows`, its matrix in the policy's item index
    (item i = `item_ids[i - 1]`)."""
    peer = build_peer(name, setting, item_ids).fit(rows)
    index = {int(i): k for k, i in enumerate(item_ids)}
    pos = np.array([index[int(i)] for i in peer.items], np.int64)
    m = np.zeros((len(item_ids), len(item_ids)), np.float32)
    m[np.ix_(pos, pos)] = peer.item_matrix
    return ItemPrior(m, int(setting.get("window", 0)), float(setting.get("decay", 1.0)), name)


def choose_prior(
    policy: SeqPolicy,
    sc: SeqScores,
    votes: dict[int, np.ndarray],
    rows: EvalRows,
    priors: dict[str, ItemPrior],
    weights: Sequence[float],
) -> tuple[dict[str, Any], dict[str, float]]:
    """({"prior": peer, "v": weight}, validation grid) for `policy`'s chosen K and w; v = 0
    (no prior) is always in the grid and wins ties."""
    grid: dict[str, float] = {}
    scores = {name: p.scores(rows.histories) for name, p in priors.items()}
    base = policy.with_config(replace(policy.cfg, prior_weight=0.0)).combine(sc, votes)
    grid["v=0"] = float(row_metrics(base, rows)[0].mean())
    for name, prior in scores.items():
        for v in weights:
            if v:
                pc = replace(policy.cfg, prior_weight=v)
                s = policy.with_config(pc).combine(sc, votes, prior)
                grid[f"{name},v={v}"] = float(row_metrics(s, rows)[0].mean())
    best = max(grid, key=lambda g: (grid[g], -list(grid).index(g)))
    if best == "v=0":
        return {"prior": None, "v": 0.0}, grid
    name, v = best.split(",")
    return {"prior": name, "v": float(v[2:])}, grid
