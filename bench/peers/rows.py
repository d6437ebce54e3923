"""Row by row, what the RecBole peers are given and what they hand back.

Every interaction of the three split frames, in (user, time, split, row) order, carries the
items its user acted on before it (`sequence_rows`): the sequential atomic files are written
from it, and so are the test rows (`QueryRow`) the job ranks one by one, in the test frame's
own row order. A peer's answer per test row is a ranked list of item ids or ``None`` (a
sequential model and a row with no earlier item); `check_lists` holds the job to that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

__all__ = [
    "LIST_MARGIN",
    "SPLITS",
    "QueryRow",
    "SeqRow",
    "check_lists",
    "prepare_frame",
    "read_query_rows",
    "sequence_rows",
    "write_query_rows",
]

SPLITS = ("train", "valid", "test")
LIST_MARGIN = 100
"""A test row's list holds ``LIST_MARGIN + n_seen`` items: after the harness removes the
user's earlier items, at least ``LIST_MARGIN`` remain."""


def _ts_seconds(df: pl.DataFrame) -> pl.Expr:
    dtype = df.schema["ts"]
    if isinstance(dtype, pl.Datetime):
        return pl.col("ts").dt.epoch("ms").cast(pl.Float64) / 1000.0
    if dtype == pl.Date:
        return pl.col("ts").cast(pl.Datetime("ms")).dt.epoch("ms").cast(pl.Float64) / 1000.0
    if dtype.is_numeric():
        return pl.col("ts").cast(pl.Float64)
    raise ValueError(f"unsupported ts dtype {dtype}: expected datetime or seconds")


def prepare_frame(df: pl.DataFrame, split: str, order: int) -> pl.DataFrame:
    """``user_id``, ``item_id``, ``timestamp`` (float seconds), ``_split`` (= ``order``) and
    ``_row`` (position in ``df``)."""
    missing = {"user_id", "item_id", "ts"} - set(df.columns)
    if missing:
        raise ValueError(f"{split} frame lacks columns {sorted(missing)}")
    return df.with_row_index("_row").select(
        pl.col("user_id").cast(pl.Int64),
        pl.col("item_id").cast(pl.Int64),
        _ts_seconds(df).alias("timestamp"),
        pl.lit(order).alias("_split"),
        pl.col("_row"),
    )


@dataclass(frozen=True)
class SeqRow:
    """One interaction with what its user did before it."""

    split: int
    """0 train, 1 valid, 2 test."""
    row: int
    """Position in its split frame."""
    user: int
    """User id."""
    item: int
    """Item id."""
    ts: float
    """Seconds."""
    history: tuple[int, ...]
    """The user's earlier items (every split, time order, oldest first), last ``max_seq_len``."""
    n_seen: int
    """Distinct earlier items of the user (all of them, not only the last ``max_seq_len``)."""


def sequence_rows(frames: Sequence[pl.DataFrame], max_seq_len: int = 50) -> Iterator[SeqRow]:
    """Every row of ``frames`` (train, valid, test) in (user, ts, split, row) order."""
    assert len(frames) == len(SPLITS), f"{len(frames)=}"
    pairs = enumerate(zip(frames, SPLITS, strict=True))
    prepared = [prepare_frame(df, s, k) for k, (df, s) in pairs]
    allrows = pl.concat(prepared).sort(["user_id", "timestamp", "_split", "_row"])
    last_user: int | None = None
    history: list[int] = []
    seen: set[int] = set()
    for u, i, t, s, r in allrows.select(
        "user_id", "item_id", "timestamp", "_split", "_row"
    ).iter_rows():
        if u != last_user:
            last_user, history, seen = u, [], set()
        yield SeqRow(s, r, u, i, t, tuple(history[-max_seq_len:]), len(seen))
        history.append(i)
        seen.add(i)


@dataclass(frozen=True)
class QueryRow:
    """What the job needs to rank one test row."""

    user: int
    """User id (general models score the row by it)."""
    history: tuple[int, ...]
    """Earlier items, oldest first, at most ``max_seq_len`` (sequential models' input)."""
    n_seen: int
    """Distinct earlier items: the list is ``LIST_MARGIN + n_seen`` long."""


def write_query_rows(rows: Sequence[QueryRow], path: Path) -> None:
    """The job's input: a JSON list of ``{"user", "history", "n_seen"}``."""
    path.write_text(json.dumps([asdict(r) for r in rows]))


def read_query_rows(path: Path) -> list[QueryRow]:
    """Inverse of `write_query_rows`."""
    return [
        QueryRow(int(r["user"]), tuple(int(i) for i in r["history"]), int(r["n_seen"]))
        for r in json.loads(path.read_text())
    ]


def check_lists(
    lists: Sequence[Sequence[int] | None], rows: Sequence[QueryRow], sequential: bool
) -> None:
    """A peer's lists align with ``rows``: one entry each, ``None`` exactly where a sequential
    model has no earlier item, otherwise distinct ids, ``LIST_MARGIN + n_seen`` at most."""
    if len(lists) != len(rows):
        raise ValueError(f"{len(lists)} lists for {len(rows)} test rows")
    for k, (items, row) in enumerate(zip(lists, rows, strict=True)):
        cold = sequential and not row.history
        if (items is None) != cold:
            raise ValueError(f"test row {k}: list {'missing' if items is None else 'given'}")
        if items is None:
            continue
        if len(items) > LIST_MARGIN + row.n_seen or len(set(items)) != len(items):
            raise ValueError(f"test row {k}: {len(items)} items, n_seen {row.n_seen}")
