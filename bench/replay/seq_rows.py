"""The fixed leave-last-out protocol for the sequence policy, and its reference peers.

Rule (issue 26): a decision's history and seen-item mask are EVERY earlier row of its user in
split order (same-second earlier rows included): a valid row sees the user's train rows, a test
row the train and valid rows. Settings are selected on train -> valid; the chosen setting is
refit on train + valid and scored on the test rows. Ranking is over the full catalogue with the
seen items masked (the target only if seen); ties go to training popularity, then item id.
Per-row NDCG@10 = 1 / log2(rank + 1) when rank <= 10; HR@10 = [rank <= 10].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bench.replay.baselines import EASE, ItemKNN, ItemKNNConfig
from data.movielens import fetch_movielens_100k
from data.schema import load_canonical
from data.splits import leave_last_out
from recsys.config import RewardConfig
from recsys.rec.seq.batch import UserSequence
from training.seq_fit import sequences_from_frame

__all__ = [
    "UNRANKED",
    "EvalRows",
    "Protocol",
    "load_protocol",
    "row_metrics",
    "select_peer",
    "target_ranks",
]


@dataclass(frozen=True)
class EvalRows:
    """R decisions to score (one per user, sorted by user id)."""

    users: np.ndarray
    """(R,) user ids."""
    histories: list[UserSequence]
    """Each row's history: every earlier row of its user in split order."""
    targets: np.ndarray
    """(R,) target item indices in 1..N."""
    ts: np.ndarray
    """(R,) decision times (unix seconds)."""
    seen: np.ndarray
    """(R, N) bool: item i - 1 is in the row's history (masked from its ranking)."""
    tie_pos: np.ndarray
    """(N,) position of each item in the tie order (popularity of the fit rows, then id)."""


@dataclass(frozen=True)
class Protocol:
    """Everything one run needs: frames, item index, sequences and the two row sets."""

    item_ids: np.ndarray
    """(N,) item id of index 1..N (position i - 1)."""
    train: pl.DataFrame
    """Train rows."""
    trainval: pl.DataFrame
    """Train + valid rows (the refit data)."""
    train_seqs: list[UserSequence]
    """Per user, the train rows (the selection fit's data)."""
    trainval_seqs: list[UserSequence]
    """Per user, the train + valid rows (the refit's data)."""
    valid: EvalRows
    """Validation decisions (history = train rows)."""
    test: EvalRows
    """Test decisions (history = train + valid rows)."""


def _tie_order(frame: pl.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """(N,) rank of each item by count in `frame` desc, then id asc (the baselines' rule)."""
    counts = dict(frame.group_by("item_id").len().iter_rows())
    c = np.array([counts.get(int(i), 0) for i in item_ids])
    order = np.lexsort((item_ids, -c))
    pos = np.empty(len(item_ids), np.int64)
    pos[order] = np.arange(len(item_ids))
    return pos


def _rows(
    rows: pl.DataFrame, seqs: dict[int, UserSequence], index: dict[int, int], tie: np.ndarray
) -> EvalRows:
    rows = rows.sort("user_id")
    users = rows["user_id"].to_numpy()
    hist = [seqs[int(u)] for u in users]
    seen = np.zeros((len(users), len(tie)), bool)
    for r, h in enumerate(hist):
        seen[r, h.items - 1] = True
    return EvalRows(
        users,
        hist,
        np.array([index[int(i)] for i in rows["item_id"].to_list()], np.int64),
        rows["ts"].dt.epoch("us").to_numpy().astype(np.float64) / 1e6,
        seen,
        tie,
    )


def load_protocol(reward: RewardConfig | None = None, cache: Path | None = None) -> Protocol:
    """MovieLens-100K leave-last-out with a valid row per user, under the fixed rule."""
    reward = reward or RewardConfig()
    inter = load_canonical(fetch_movielens_100k(cache)).interactions
    split = leave_last_out(inter, with_valid=True)
    item_ids = np.array(sorted(inter["item_id"].unique().to_list()), np.int64)
    index = {int(i): k + 1 for k, i in enumerate(item_ids)}
    trainval = pl.concat([split.train, split.valid])  # valid after train: stable sort keeps it last
    tr = sequences_from_frame(split.train, index, reward)
    tv = sequences_from_frame(trainval, index, reward)
    return Protocol(
        item_ids,
        split.train,
        trainval,
        list(tr.values()),
        list(tv.values()),
        _rows(split.valid, tr, index, _tie_order(split.train, item_ids)),
        _rows(split.test, tv, index, _tie_order(trainval, item_ids)),
    )


UNRANKED = 2**40
"""The rank of a target that the mask removed (above every cut-off)."""


def target_ranks(scores: np.ndarray, rows: EvalRows) -> np.ndarray:
    """(R, N) scores (column i - 1 = item i) -> (R,) 1-based rank of each target among the
    unseen items (ties by `rows.tie_pos`); a seen target (never recommended) gets `UNRANKED`."""
    assert scores.shape == rows.seen.shape, f"{scores.shape=} {rows.seen.shape=}"
    r = np.arange(len(scores))
    t = rows.targets - 1
    st = scores[r, t][:, None]
    tp = rows.tie_pos[t][:, None]
    better = (scores > st) | ((scores == st) & (rows.tie_pos[None, :] < tp))
    rank = (better & ~rows.seen).sum(axis=1) + 1
    return np.where(rows.seen[r, t], UNRANKED, rank)


def row_metrics(scores: np.ndarray, rows: EvalRows, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(NDCG@k (R,), HR@k (R,)) of each row."""
    rank = target_ranks(scores, rows)
    hit = rank <= k
    return np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0), hit.astype(np.float64)


def _peer_scores(model: EASE | ItemKNN, rows: EvalRows, item_ids: np.ndarray) -> np.ndarray:
    """(R, N) scores of a fitted baseline in item-index order."""
    assert model.items is not None
    col = np.searchsorted(item_ids, model.items)  # baseline position -> index - 1
    out = np.zeros(rows.seen.shape)
    for r, h in enumerate(rows.histories):
        out[r, col] = model.scores([int(i) for i in item_ids[h.items - 1]])
    return out


def select_peer(
    name: str, proto: Protocol
) -> tuple[str, dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """(chosen setting, {setting: valid NDCG@10}, test (NDCG, HR) rows) of EASE or item-kNN:
    a small grid on train -> valid, the best refit on train + valid. Ties: first in grid."""
    catalog = [int(i) for i in proto.item_ids]
    if name == "ease":
        grid: dict[str, Callable[[], EASE | ItemKNN]] = {
            f"lambda={lam}": (lambda lam=lam: EASE(lam, catalog))
            for lam in (10, 50, 100, 250, 500, 1000, 2000)
        }
    elif name == "item-knn":
        grid = {
            f"recent={n},decay={d},shrink={s}": (
                lambda n=n, d=d, s=s: ItemKNN(ItemKNNConfig(n, d, s), catalog)
            )
            for n in (10, 50, 1000)
            for d in (0.9, 1.0)
            for s in (0.0, 20.0)
        }
    else:
        raise ValueError(f"unknown peer {name!r}")
    curve: dict[str, float] = {}
    ease: EASE | None = None
    for key, make in grid.items():
        if name == "ease":  # one Gram matrix, one solve per lambda
            lam = float(key.split("=")[1])
            ease = ease.set_lambda(lam) if ease is not None else EASE(lam, catalog).fit(proto.train)
            model: EASE | ItemKNN = ease
        else:
            model = make().fit(proto.train)
        curve[key] = float(
            row_metrics(_peer_scores(model, proto.valid, proto.item_ids), proto.valid)[0].mean()
        )
    best = max(curve, key=lambda k: (curve[k], -list(curve).index(k)))
    final = grid[best]().fit(proto.trainval)
    return best, curve, row_metrics(_peer_scores(final, proto.test, proto.item_ids), proto.test)
