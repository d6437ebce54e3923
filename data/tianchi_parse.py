"""Log text -> parsed, validated polars frames: byte ranges, blocks, one reason per row.

Every step is a vectorised polars expression over a whole block (no Python loop per row):
ids lose surrounding blanks and their letter prefix and are cast to Int64; actions are
stripped and lower-cased; timestamps are tried in `TIME_FORMATS` order, each later format only
on the rows the earlier ones failed (the common case parses once); the reason is the first
failing check in `REJECT_REASONS` order.
"""

from __future__ import annotations

import io
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data.schema import ACTION_DTYPE, REJECT_REASONS, TS_DTYPE
from data.tianchi_files import TIME_FORMATS, TextLayout

__all__ = [
    "RAW_COLUMNS",
    "REASON_DTYPE",
    "ByteRange",
    "byte_ranges",
    "iter_blocks",
    "iter_range_blocks",
    "parse_log",
    "read_block",
]

RAW_COLUMNS = ("item_raw", "user_raw", "action_raw", "vtime_raw")
"""The four raw string columns of a log line, in file order."""
_LETTERS = string.ascii_letters
REASON_DTYPE = pl.Enum(list(REJECT_REASONS))
"""Dtype of the `reason` column of `parse_log` (an enum: cheap to build for every row)."""
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class ByteRange:
    """Whole lines `[start, end)` of one log file: the unit of work of pass 1 (a Ray task)."""

    path: Path
    """Log file."""
    start: int
    """First byte (at a line start)."""
    end: int
    """One past the last byte (after a line break, or the end of the file)."""
    layout: TextLayout
    """How the file is laid out."""


def byte_ranges(path: Path, layout: TextLayout, block_bytes: int) -> Iterator[ByteRange]:
    """Cut `path` (header skipped) into line-aligned ranges of about `block_bytes` each."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if layout.has_header:
            f.readline()
        start = f.tell()
        while start < size:
            end = start + max(1, block_bytes)
            if end < size:
                f.seek(end - 1)
                f.readline()  # to just past the line break at or after end - 1
                end = f.tell()
            yield ByteRange(path, start, min(end, size), layout)
            start = end


def iter_range_blocks(rng: ByteRange, block_bytes: int) -> Iterator[bytes]:
    """Yield the bytes of `rng` in blocks of whole lines of about `block_bytes` each."""
    with rng.path.open("rb") as f:
        f.seek(rng.start)
        left, carry = rng.end - rng.start, b""
        while left > 0:
            buf = f.read(min(max(1, block_bytes), left))
            if not buf:
                break
            left -= len(buf)
            data = carry + buf
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        if carry:
            yield carry


def iter_blocks(path: Path, block_bytes: int, skip_header: bool) -> Iterator[bytes]:
    """Yield the bytes of `path` in blocks of whole lines of about `block_bytes` each."""
    start = 0
    if skip_header:
        with path.open("rb") as f:
            f.readline()
            start = f.tell()
    rng = ByteRange(path, start, path.stat().st_size, TextLayout(",", skip_header, "utf-8"))
    yield from iter_range_blocks(rng, block_bytes)


def read_block(block: bytes, layout: TextLayout, lossy: bool = True) -> pl.DataFrame:
    """Raw string columns of one block of log lines (undecodable bytes become U+FFFD).

    `lossy=False` is for blocks known to be ASCII (valid UTF-8, nothing to replace: the same
    frame, read without the replacement pass)."""
    return pl.read_csv(
        io.BytesIO(block),
        has_header=False,
        separator=layout.separator,
        quote_char='"' if layout.separator == "," else None,
        schema=dict.fromkeys(RAW_COLUMNS, pl.String()),
        encoding="utf8-lossy" if lossy else "utf8",
        truncate_ragged_lines=True,
        empty_string_is_null=True,
        raise_if_empty=False,
        missing_columns="insert",  # a short first line must not narrow the block's columns
    )


def _id_slow(text: pl.Expr) -> pl.Expr:
    """Blanks, then the leading ASCII letters (`u`, `i`) stripped; Int64 or null."""
    return text.str.strip_chars().str.strip_chars_start(_LETTERS).cast(pl.Int64, strict=False)


def _action_slow(text: pl.Expr) -> pl.Expr:
    """Blanks stripped, lower-cased; one of `ACTIONS` (enum) or null."""
    return text.str.strip_chars().str.to_lowercase().cast(ACTION_DTYPE, strict=False)


def _ts_slow(text: pl.Expr) -> pl.Expr:
    """The first of `TIME_FORMATS` that parses the stripped text."""
    stripped = text.str.strip_chars()
    return pl.coalesce([stripped.str.strptime(TS_DTYPE, f, strict=False) for f in TIME_FORMATS])


_FAST: dict[str, tuple[str, pl.Expr]] = {
    "item_id": ("item_raw", pl.col("item_raw").str.strip_prefix("i").cast(pl.Int64, strict=False)),
    "user_id": ("user_raw", pl.col("user_raw").str.strip_prefix("u").cast(pl.Int64, strict=False)),
    "action": ("action_raw", pl.col("action_raw").cast(ACTION_DTYPE, strict=False)),
    "ts": ("vtime_raw", pl.col("vtime_raw").str.strptime(TS_DTYPE, TIME_FORMATS[0], strict=False)),
}
"""Parsed column -> (raw column, fast parse): the usual letter prefix removed, no stripping, no
lower-casing, the first time format."""
_SLOW = {"item_id": _id_slow, "user_id": _id_slow, "action": _action_slow, "ts": _ts_slow}
"""Parsed column -> the exact parse (see `parse_log`)."""


def _patch(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Re-parse with the exact slow path the rows of `col` the fast path left null."""
    raw = _FAST[col][0]
    idx = (df[col].is_null() & df[raw].is_not_null()).arg_true()
    if idx.len() == 0:
        return df
    fixed = df.select(pl.col(raw).gather(idx)).select(_SLOW[col](pl.col(raw)))[raw]
    return df.with_columns(df[col].scatter(idx, fixed))


def parse_log(
    df: pl.DataFrame, product_ids: pl.Series | None, check_text: bool = True
) -> pl.DataFrame:
    """Add parsed columns `item_id`, `user_id`, `action` (enum), `ts` and a `reason`
    (`REASON_DTYPE`, null for valid rows); row order is kept. `check_text=False` skips the
    undecodable-text test (the caller knows the bytes were ASCII: no cell can hold U+FFFD).

    Each parse is a fast polars expression on the raw text (the usual `i`/`u` prefix removed,
    no stripping, no lower-casing, the first time format); the exact parse (strip, drop the
    leading letters, lower-case, every format in order) then runs on the few rows the fast one
    left null, gathered and scattered back. Where the fast parse succeeds the exact one gives
    the same value: both see the same characters but for surrounding blanks and letters
    before the number, and neither a blank nor a letter parses as a digit, a date field or an
    action.
    """
    bad_text = (
        pl.any_horizontal(
            [
                pl.col(c).str.contains(_REPLACEMENT, literal=True).fill_null(False)
                for c in RAW_COLUMNS
            ]
        )
        if check_text
        else pl.lit(False)
    )
    df = df.with_columns(bad_text=bad_text, **{c: expr for c, (_, expr) in _FAST.items()})
    for col in _FAST:
        df = _patch(df, col)
    reason = (
        pl.when(pl.col("bad_text"))
        .then(_reason("undecodable_text"))
        .when(pl.col("item_id").is_null() | pl.col("user_id").is_null())
        .then(_reason("missing_id"))
        .when(pl.col("action").is_null())
        .then(_reason("unknown_action"))
        .when(pl.col("ts").is_null())
        .then(_reason("bad_timestamp"))
    )
    if product_ids is not None:
        has_product = pl.col("item_id").is_in(product_ids.implode()).fill_null(False)
        reason = reason.when(~has_product).then(_reason("dangling_item"))
    return df.with_columns(reason=reason.otherwise(pl.lit(None, dtype=REASON_DTYPE)))


def _reason(name: str) -> pl.Expr:
    """A reject reason as a `REASON_DTYPE` literal."""
    return pl.lit(name, dtype=REASON_DTYPE)
