"""The live co-occurrence: online events join the offline counts, refits are batched, a user
can be forgotten, and the window bounds memory."""

from __future__ import annotations

import numpy as np

from recsys.rec.cooccurrence import Cooccurrence, LiveCooccurrence


def test_refits_every_n_events_and_adds_to_the_base_counts() -> None:
    """No refit before `refit_every` events; then the counts are base + online (by hand)."""
    base = Cooccurrence.fit(np.array(["x", "x"]), np.array([0, 1]), 4)
    live = LiveCooccurrence(base, 4, refit_every=3)
    assert live.add("a", [0, 1], [1.0, 2.0]) is None
    new = live.add("b", [1], [3.0])
    assert new is not None and live.current is new
    co = new.co.toarray()
    assert co[0, 1] == 2.0  # x and a hold both 0 and 1
    assert new.support.tolist() == [2.0, 3.0, 0.0, 0.0]
    assert new.succ is not None and new.succ.toarray()[0, 1] == 2.0


def test_successions_follow_time_order_not_arrival_order() -> None:
    """Events added out of time order are sorted by timestamp before the refit."""
    live = LiveCooccurrence(None, 3, refit_every=2)
    new = live.add("a", [2, 1], [5.0, 1.0])
    assert new is not None and new.succ is not None
    assert new.succ.toarray()[1, 2] == 1.0 and new.succ.toarray()[2, 1] == 0.0
    assert new.next_scores_without(None, [1], 1.0).tolist() == [0.0, 0.0, 1.0]


def test_forget_drops_a_user_and_the_window_keeps_the_latest_events() -> None:
    """Erasure removes every event of the user; max_events drops the oldest first."""
    live = LiveCooccurrence(None, 3, refit_every=100, max_events=3)
    live.add("a", [0, 1], [1.0, 2.0])
    live.add("b", [0, 2], [3.0, 4.0])
    gone = live.forget("b")
    assert gone.support.tolist() == [1.0, 1.0, 0.0]
    live.add("c", [2, 1, 0], [5.0, 6.0, 7.0])
    kept = live.refit()
    assert kept.support.sum() == 3.0 and "a" not in kept.user_rows
