"""The cross model's per-request inputs, built without per-candidate loops, equal the plain
construction: the padded index of the candidates and their tokens read by row."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from recsys.rec.item_crosses import ItemCrosses
from recsys.rec.items import ItemTable
from recsys.rec.scorers.items import _row_tokens, _tokens


def test_index_of_a_batch_is_each_candidates_own_index() -> None:
    """Candidates with 1 to 4 tokens padded into one matrix: each row's valid hashed indices,
    in order, are those of the candidate indexed alone (no padding)."""
    cx = ItemCrosses(bits=12, history=3)
    titles = ["", "cat=1", "cat=1 brand=2", "cat=2 brand=2 size=m", "plain words"]
    cand = [cx.tokens(f"i{k}", t) for k, t in enumerate(titles)]
    hist = [cx.tokens("h0", "cat=1"), cx.tokens("h1", "")]
    idx, valid, _ = cx._index(cand, hist)
    assert valid.sum(axis=1).tolist() == [len(c) * (1 + 3 + 2) for c in cand]
    for r, c in enumerate(cand):
        one, one_valid, _ = cx._index([c], hist)
        assert one_valid.all()
        assert np.array_equal(idx[r][valid[r]], one[0])


def test_row_tokens_are_the_tokens_of_the_rows_ids() -> None:
    """Read by catalogue row, the tokens are those of the row's id and title."""
    table = ItemTable(["a", "b", "c"], ["cat=1", "x brand=2", ""], np.eye(3, dtype=np.float32))
    rec = SimpleNamespace(crosses=ItemCrosses(bits=10), items=table)
    rows = np.array([2, 0, 1, 0], np.int64)
    got = _row_tokens(rec, rows)  # type: ignore[arg-type]
    want = _tokens(rec, [table.ids[r] for r in rows])  # type: ignore[arg-type]
    assert len(got) == len(want) == 4
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
