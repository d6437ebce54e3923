"""The state-keyed case memory (`recsys.rec.seq.case_vote`): votes by hand, only past cases."""

from __future__ import annotations

import numpy as np

from recsys.rec.seq import CaseVote


def _memory() -> CaseVote:
    mem = CaseVote(dim=2, n_items=4)
    states = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.0]], np.float32)
    mem.write(states, np.array([2, 2, 3, 4]), np.array([10.0, 20.0, 30.0, 40.0]))
    return mem


def test_vote_is_similarity_and_count_weighted() -> None:
    """Two similar cases that led to item 2 and one to item 4 vote by summed cosine, normalised."""
    v = _memory().votes(np.array([[1.0, 0.0]], np.float32), np.array([100.0]), [3])[3][0]
    c = 1.0 / np.sqrt(1.0 + 0.01)
    assert np.allclose(v, np.array([0.0, 1.0 + c, 0.0, 1.0]) / (2.0 + c), atol=1e-5)
    assert abs(v.sum() - 1.0) < 1e-9


def test_cases_only_from_the_past() -> None:
    """A decision at time T never sees a case logged at or after T."""
    mem = _memory()
    q = np.array([[1.0, 0.0]], np.float32)
    v = mem.votes(q, np.array([40.0]), [10])[10][0]
    assert v[3] == 0.0  # the item-4 case is logged at 40: not before the decision
    assert v[1] > 0.0
    assert not mem.votes(q, np.array([10.0]), [10])[10].any()  # nothing before t = 10
