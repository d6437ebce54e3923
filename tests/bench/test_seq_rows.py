"""Ranking under the fixed rule (`bench.replay.seq_rows.target_ranks`): seen mask and ties."""

from __future__ import annotations

import numpy as np

from bench.replay.seq_rows import UNRANKED, EvalRows, row_metrics, target_ranks


def _rows(targets: list[int], seen: list[list[int]], tie: list[int]) -> EvalRows:
    n = len(tie)
    mask = np.zeros((len(targets), n), bool)
    for r, items in enumerate(seen):
        mask[r, np.array(items, np.int64) - 1] = True
    z = np.zeros(len(targets))
    return EvalRows(z, [], np.array(targets), z, mask, np.array(tie))


def test_seen_items_are_skipped_and_ties_follow_the_tie_order() -> None:
    """Seen items never count above the target; equal scores rank by the tie order."""
    rows = _rows([3, 2], [[1], []], [2, 0, 1, 3])
    scores = np.array([[9.0, 5.0, 5.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    # tie order: item 2, item 3, item 1, item 4
    # row 0: item 1 (score 9) is seen; item 2 ties with the target 3 and comes first -> rank 2
    # row 1: all tie -> the target 2 is first
    assert target_ranks(scores, rows).tolist() == [2, 1]
    nd, hit = row_metrics(scores, rows)
    assert np.allclose(nd, [1.0 / np.log2(3.0), 1.0]) and hit.tolist() == [1.0, 1.0]


def test_a_seen_target_is_never_recommended() -> None:
    """A target already in the history ranks below the whole catalogue (NDCG 0)."""
    rows = _rows([1], [[1]], [0, 1, 2])
    rank = target_ranks(np.array([[10.0, 0.0, 0.0]]), rows)
    assert rank.tolist() == [UNRANKED]
    assert row_metrics(np.array([[10.0, 0.0, 0.0]]), rows)[0].tolist() == [0.0]


def test_ndcg_of_rank_three() -> None:
    """A target ranked third scores 1 / log2(4) = 0.5."""
    rows = _rows([3], [[]], [0, 1, 2, 3])
    nd, _ = row_metrics(np.array([[3.0, 2.0, 1.0, 0.0]]), rows)
    assert abs(nd[0] - 0.5) < 1e-12
