"""The sequence policy's training sequences and validation rows under the fixed protocol.

Rule (docs/protocol.md): a decision's history and seen-item mask are EVERY earlier row of its
user in split order (same-second earlier rows included). Settings are selected on the fit rows
-> the validation rows (`bench.replay.tuning.validation_frames`: leave-last-out train -> valid;
time-cutoff each user's last training row against the rest); the chosen setting is refit on the
refit rows (`bench.replay.methods.training_rows`) and the test rows go through the `Recommender`
(`bench.replay.seq_method`). Here, validation ranking is over the full catalogue with the seen
items masked (the target only if seen); ties go to fit-row popularity, then item id. Per-row
NDCG@10 = 1 / log2(rank + 1) when rank <= 10; HR@10 = [rank <= 10].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recsys.config import RewardConfig
from recsys.rec.seq.batch import UserSequence
from training.seq_fit import sequences_from_frame

__all__ = [
    "UNRANKED",
    "EvalRows",
    "Protocol",
    "load_protocol",
    "protocol_of",
    "row_metrics",
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
    """Everything a selection fit and its refit need: item index, sequences, validation rows."""

    item_ids: np.ndarray
    """(N,) item id of index 1..N (position i - 1)."""
    train_seqs: list[UserSequence]
    """Per user, the fit rows (the selection fit's data)."""
    trainval_seqs: list[UserSequence]
    """Per user, the refit rows (the refit's data)."""
    valid: EvalRows
    """Validation decisions of users with fit rows (history = their fit rows)."""


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
    """The rows of users with a history in `seqs` (the others are cold), sorted by user."""
    rows = rows.filter(pl.col("user_id").is_in(list(seqs))).sort("user_id")
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


def protocol_of(
    fit: pl.DataFrame,
    valid: pl.DataFrame,
    refit: pl.DataFrame,
    item_ids: np.ndarray,
    reward: RewardConfig | None = None,
) -> Protocol:
    """Sequences of the fit and refit rows (per user, split order) and the validation rows;
    item i of the model is `item_ids[i - 1]` (every item of the rows must be there)."""
    reward = reward or RewardConfig()
    index = {int(i): k + 1 for k, i in enumerate(item_ids)}
    tr = sequences_from_frame(fit, index, reward)
    tv = sequences_from_frame(refit, index, reward)
    return Protocol(
        item_ids,
        list(tr.values()),
        list(tv.values()),
        _rows(valid, tr, index, _tie_order(fit, item_ids)),
    )


def load_protocol(cache: Path | None = None, reward: RewardConfig | None = None) -> Protocol:
    """MovieLens-100K leave-last-out: fit = train, valid = each user's valid row, refit = train
    + valid (the catalogue = the rated items)."""
    from data.movielens import fetch_movielens_100k
    from data.schema import load_canonical
    from data.splits import leave_last_out

    inter = load_canonical(fetch_movielens_100k(cache)).interactions
    split = leave_last_out(inter, with_valid=True)
    item_ids = np.array(sorted(inter["item_id"].unique().to_list()), np.int64)
    refit = pl.concat([split.train, split.valid])  # valid after train: the sort keeps it last
    return protocol_of(split.train, split.valid, refit, item_ids, reward)


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
