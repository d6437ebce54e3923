"""The live co-occurrence: online events join the offline counts, refits are batched, a user
can be forgotten, and the window bounds memory."""

from __future__ import annotations

import itertools
import threading

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


def test_fit_successions_per_user_match_a_brute_force_loop() -> None:
    """Each user's (from, to) successions equal a per-user scan of their time-ordered rows."""
    rng = np.random.default_rng(0)
    users = rng.choice(["a", "b", "c", "d"], size=200)
    rows = rng.integers(0, 6, size=200)
    fit = Cooccurrence.fit(users, rows, 6)
    for u in "abcd":
        seq = rows[users == u]
        pairs = [(int(x), int(y)) for x, y in itertools.pairwise(seq) if x != y]
        src, dst = fit.user_steps.get(u, (np.zeros(0), np.zeros(0)))
        assert list(zip(src.tolist(), dst.tolist(), strict=True)) == pairs, u


def test_successions_across_times_match_a_brute_force_loop() -> None:
    """With times, each event succeeds its user's last event at the previous time, and events
    at one time never succeed one another (a per-user scan of (time, row) groups)."""
    rng = np.random.default_rng(1)
    users = rng.choice(["a", "b", "c"], size=300)
    ts = np.sort(rng.integers(0, 40, size=300)).astype(float)
    rows = rng.integers(0, 7, size=300)
    fit = Cooccurrence.fit(users, rows, 7, ts=ts)
    for u in "abc":
        seq, at = rows[users == u].tolist(), ts[users == u].tolist()
        pairs = []
        for k in range(len(seq)):
            before = [j for j in range(k) if at[j] < at[k]]
            if before and seq[before[-1]] != seq[k]:
                pairs.append((seq[before[-1]], seq[k]))
        src, dst = fit.user_steps.get(u, (np.zeros(0), np.zeros(0)))
        assert list(zip(src.tolist(), dst.tolist(), strict=True)) == pairs, u
    assert fit.succ is not None
    assert fit.succ.sum() == sum(len(s) for s, _ in fit.user_steps.values())


def test_a_live_window_counts_clicks_on_one_list_as_successions_of_the_list_before() -> None:
    """Two clicks on one list (one time): posted order makes them a succession; across times
    they are both successions of the previous list's last click instead."""
    posted = LiveCooccurrence(None, 4, refit_every=4)
    timed = LiveCooccurrence(None, 4, refit_every=4, successions_across_times=True)
    for live in (posted, timed):
        live.add("a", [0, 1], [1.0, 1.0])
        live.add("a", [2, 3], [2.0, 2.0])
    assert posted.current is not None and posted.current.succ is not None
    assert timed.current is not None and timed.current.succ is not None
    assert np.argwhere(posted.current.succ.toarray()).tolist() == [[0, 1], [1, 2], [2, 3]]
    assert np.argwhere(timed.current.succ.toarray()).tolist() == [[1, 2], [1, 3]]


def test_adds_refits_and_forgets_from_many_threads_lose_no_event() -> None:
    """8 threads add (refit due after every event) while 2 erase users: nothing raises, the
    window ends with exactly the events of the users never forgotten, and the published counts
    are those of the final window."""
    published: list[Cooccurrence] = []
    live = LiveCooccurrence(None, 50, refit_every=1, publish=published.append)
    errors: list[BaseException] = []

    def add(k: int) -> None:
        try:
            for j in range(150):
                live.add(f"keep{k}", [j % 50, (j + 1) % 50], [float(j), j + 0.5])
                live.add(f"gone{k}", [j % 50], [float(j)])
        except BaseException as exc:
            errors.append(exc)

    def erase() -> None:
        try:
            for j in range(30):
                live.forget(f"gone{j % 8}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    threads += [threading.Thread(target=erase) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    for k in range(8):
        live.forget(f"gone{k}")
    assert len(live) == 8 * 150 * 2
    final = live.refit()
    assert published[-1] is final and live.current is final
    assert final.support.sum() == 8 * 50  # each keeper holds every one of the 50 items
