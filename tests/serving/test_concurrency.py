"""Many request threads at once on one real server: events, feedback and erasure never 5xx, and
the state they share (live co-occurrence, popularity, case bank and id maps) stays whole."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx

from serving.process import ServerProcess
from serving.runtime import EventGate
from serving.testing import AUTH, READ_AUTH, server_env

THREADS = 16
"""Client threads hammering the server at once."""
LOOPS = 12
"""Loops per thread: recommend, feedback (+ its repeat), a batch of events, sometimes erasure."""


def _hammer(url: str, k: int, out: list[tuple[str, int]], keys: dict[str, int]) -> None:
    """One thread (a transport error is recorded as status 0 and ends it)."""
    try:
        _loops(url, k, out, keys)
    except httpx.HTTPError:
        out.append(("transport", 0))


def _loops(url: str, k: int, out: list[tuple[str, int]], keys: dict[str, int]) -> None:
    """Its own users; recommend -> feedback twice (same key) -> 20 events; every third loop
    erases the user and takes a new one."""
    user = f"t{k}-u0"
    with httpx.Client(base_url=url, timeout=60.0) as http:
        for loop in range(LOOPS):
            r = http.post("/v1/recommend", json={"user_id": user, "n": 5}, headers=READ_AUTH)
            out.append(("recommend", r.status_code))
            items = [i["item_id"] for i in r.json()["items"]] if r.status_code == 200 else []
            if items:
                key = uuid.uuid4().hex
                body = {
                    "decision_id": r.json()["decision_id"],
                    "item_id": items[0],
                    "action": "click",
                    "idempotency_key": key,
                }
                for again in (False, True):
                    fb = http.post("/v1/feedback", json=body, headers=AUTH)
                    out.append(("feedback", fb.status_code))
                    if fb.status_code != 202:
                        continue
                    got = fb.json()
                    if again and (not got["duplicate"] or keys.get(key) != got["feedback_id"]):
                        out.append(("repeat_mismatch", 0))
                    keys.setdefault(key, got["feedback_id"])
                events = [{"item_id": items[j % len(items)], "action": "click"} for j in range(20)]
                ev = http.post("/v1/events", json={"user_id": user, "events": events}, headers=AUTH)
                out.append(("events", ev.status_code))
            if loop % 3 == 2:
                gone = http.delete(f"/v1/users/{user}", headers=AUTH)
                out.append(("erase", gone.status_code))
                user = f"t{k}-u{loop + 1}"


def test_events_feedback_and_erasure_from_many_threads_never_answer_5xx(tmp_path: Path) -> None:
    """16 threads post events (the live co-occurrence refits after every event), feedback with
    repeated keys and erasures at once: no answer is 5xx, every repeat is the same row."""
    env = server_env(
        tmp_path / "db.sqlite3",
        MEMENTO_COOCCURRENCE_REFIT_EVERY="1",
        MEMENTO_QUEUE_SIZE="100000",
    )
    calls: list[tuple[str, int]] = []
    keys: dict[str, int] = {}
    with ServerProcess(env, log=tmp_path / "server.log") as server:
        threads = [
            threading.Thread(target=_hammer, args=(server.url, k, calls, keys))
            for k in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        alive = httpx.get(server.url + "/readyz", timeout=10.0).status_code
    errors = [c for c in calls if c[1] >= 500 or c[1] == 0]
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert not errors, (
        f"{len(errors)} 5xx or no answer of {len(calls)}: {errors[:5]}\n{log[-3000:]}"
    )
    assert alive == 200
    routes = {route for route, _ in calls}
    assert routes == {"recommend", "feedback", "events", "erase"}, routes  # no repeat_mismatch
    assert sum(1 for r, s in calls if r == "events" and s == 202) >= THREADS * LOOPS // 2
    assert len(keys) >= THREADS * LOOPS // 2


def test_a_swap_waits_for_observers_and_observers_wait_for_a_swap() -> None:
    """The event gate: observers overlap each other; a swap starts once they leave, and an
    observer arriving while a swap waits or runs goes after it."""
    gate, order = EventGate(), []
    in_a, release_a, swap_waiting = threading.Event(), threading.Event(), threading.Event()

    def observer_a() -> None:
        with gate.observing():
            in_a.set()
            with gate.observing():  # a second observer gets in at once
                order.append("b")
            release_a.wait(10.0)
            order.append("a")

    def swap() -> None:
        swap_waiting.set()
        with gate.swapping():
            order.append("swap")

    def late_observer() -> None:
        with gate.observing():
            order.append("late")

    a = threading.Thread(target=observer_a)
    a.start()
    in_a.wait(10.0)
    s = threading.Thread(target=swap)
    s.start()
    swap_waiting.wait(10.0)
    deadline = time.monotonic() + 10.0
    while not gate._swapping and time.monotonic() < deadline:  # until the swap waits on "a"
        time.sleep(0.001)
    late = threading.Thread(target=late_observer)
    late.start()
    release_a.set()
    for t in (a, s, late):
        t.join(10.0)
    assert order == ["b", "a", "swap", "late"]
