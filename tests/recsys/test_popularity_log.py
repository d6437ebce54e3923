"""The popularity log: appends in any time order keep it sorted exactly as one stable sort of
every event would, and concurrent appends lose nothing."""

from __future__ import annotations

import threading

import numpy as np

from recsys.rec.popularity import Popularity


def test_appends_in_any_order_equal_one_stable_sort_of_all_events() -> None:
    """Batches older, newer and tied with the log end up where a stable argsort puts them."""
    rng = np.random.default_rng(1)
    pop = Popularity(5, np.array([0, 1]), np.array([2.0, 4.0]))
    all_rows, all_ts = [0, 1], [2.0, 4.0]
    for _ in range(20):
        rows = rng.integers(0, 5, size=3)
        ts = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 9.0], size=3)
        pop.add(rows, ts)
        all_rows += rows.tolist()
        all_ts += ts.tolist()
    order = np.argsort(np.array(all_ts), kind="stable")
    got_rows, got_ts = pop.log()
    assert got_ts.tolist() == np.array(all_ts)[order].tolist()
    assert got_rows.tolist() == np.array(all_rows)[order].tolist()


def test_concurrent_appends_count_every_event() -> None:
    """8 threads append 200 events each: the scores count all 1,600."""
    pop = Popularity(4)

    def add(k: int) -> None:
        for j in range(200):
            pop.add(np.array([k % 4]), np.array([float(j)]))

    threads = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pop.scores(1e9).tolist() == [400.0, 400.0, 400.0, 400.0]
