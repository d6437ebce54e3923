"""The fast log parse gives exactly what the exact (strip, lower-case, every format) parse gives."""

from __future__ import annotations

import polars as pl

from data.tianchi_parse import _FAST, _SLOW, RAW_COLUMNS, parse_log

ITEMS = ["i1", "I22", " i3 ", "i 4", "5", "+6", "i-7", "ix", "", None, "ii8", "i9\t", "\u30009"]
USERS = [
    "u10",
    "U11",
    "u 12",
    " u13",
    "14 ",
    "u",
    "uu15",
    "u1_6",
    "u17.0",
    None,
    "u0x1",
    "u18",
    "u19",
]
ACTS = [
    "click",
    "Click",
    " cart",
    "CART ",
    "buy",
    "",
    None,
    "alipay",
    "collect",
    "cl ick",
    "Alipay",
]
ACTS += ["click\t", "collect"]
TIMES = [
    "2014-09-02 10:00:00",
    " 2014-09-02 10:00:00",
    "2014-09-02 10:00:00 ",
    "2014/9/3 08:15",
    "2014/09/03 08:15:07",
    "2014-09-03 08:15",
    "2014-9-3 8:15:00",
    "2014-09-31 10:00:00",
    "yesterday",
    "",
    None,
    "2014-09-02T10:00:00",
    "2014-09-02 10:00",
]


def test_fast_parse_equals_exact_parse_on_awkward_text() -> None:
    """Blanks, case, prefixes, every time layout and junk: fast + patch == exact everywhere."""
    n = len(TIMES)
    raw = pl.DataFrame(
        {c: vals[:n] for c, vals in zip(RAW_COLUMNS, (ITEMS, USERS, ACTS, TIMES), strict=True)},
        schema=dict.fromkeys(RAW_COLUMNS, pl.String()),
    )
    got = parse_log(raw, None)
    for col, (raw_col, _) in _FAST.items():
        exact = raw.select(_SLOW[col](pl.col(raw_col)))[raw_col]
        assert got[col].to_list() == exact.to_list(), col
    assert got["ts"].null_count() == 5  # invalid date, junk, empty, null, ISO "T"
    assert got["item_id"].to_list()[:3] == [1, 22, 3]
    assert got["action"].cast(pl.String).to_list()[:4] == ["click", "click", "cart", "cart"]


def test_reason_order_and_ascii_shortcut() -> None:
    """One reason per row in the documented order; skipping the text check on ASCII changes
    nothing."""
    raw = pl.DataFrame(
        {
            "item_raw": ["i1", "i\ufffd", "ix", "i1", "i1", "i9"],
            "user_raw": ["u1", "u1", "u1", "u1", "u1", "u1"],
            "action_raw": ["click", "buy", "buy", "buy", "cart", "cart"],
            "vtime_raw": ["2014-09-02 10:00:00", "x", "x", "x", "x", "2014-09-02 10:00:00"],
        }
    )
    got = parse_log(raw, pl.Series([1, 2]))["reason"].to_list()
    assert got == [
        None,
        "undecodable_text",
        "missing_id",
        "unknown_action",
        "bad_timestamp",
        "dangling_item",
    ]
    ascii_rows = raw.filter(pl.col("item_raw") != "i\ufffd")
    assert parse_log(ascii_rows, pl.Series([1, 2]), check_text=False).equals(
        parse_log(ascii_rows, pl.Series([1, 2]))
    )
