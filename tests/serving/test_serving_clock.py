"""One clock: a decision at the request's `at`, its feedback case stamped at the decision time,
s' at the feedback time on the decision's clock (the real core behind the real app)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.outcomes import feedback_time
from serving.service import DecisionSnapshot
from serving.testing import AUTH, READ_AUTH, TEST_API_KEY, TEST_READ_API_KEY
from tests.serving.test_serving_core import _settings

T0 = 1_600_000_000.0
"""A decision time years before the wall clock (simulator or replay time)."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def client_for(tmp: Path, **kw: Any) -> TestClient:
    """The app on the real core over the 30-item catalogue (items scorer, memory on)."""
    settings = _settings(
        tmp,
        recommend={"scorer": "items"},
        api_key=TEST_API_KEY,
        read_api_key=TEST_READ_API_KEY,
        decision_flush_ms=0,
        **kw,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app, lifespan running."""
    with client_for(tmp_path) as c:
        yield c


def wait_applied(c: TestClient, n: int) -> None:
    """Until the learner applied n updates (it runs on its own thread)."""
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        text = c.get("/metrics").text
        line = next(x for x in text.splitlines() if x.startswith("memento_learner_updates_total"))
        if float(line.split()[-1]) >= n:
            return
        time.sleep(0.02)
    raise TimeoutError("the learner did not apply the feedback")


def _history(c: TestClient, user: str) -> None:
    events = [{"item_id": f"i{k}", "action": "click", "ts": T0 - 600 + k} for k in range(3)]
    r = c.post("/v1/events", json={"user_id": user, "events": events}, headers=AUTH)
    assert r.status_code == 202, r.text


def test_a_feedback_case_is_retrieved_by_the_next_request_at_a_later_at(
    client: TestClient,
) -> None:
    """A decision at `at` = T0 (years ago), clicked: its case is stamped T0, and the same
    user's next request at T0 + 60 lists it behind an item (the case was retrievable)."""
    _history(client, "u1")
    first = client.post(
        "/v1/recommend", json={"user_id": "u1", "n": 5, "at": T0}, headers=READ_AUTH
    ).json()
    item = first["items"][0]["item_id"]
    fb = {
        "decision_id": first["decision_id"],
        "item_id": item,
        "action": "alipay",
        "idempotency_key": "k1",
    }
    assert client.post("/v1/feedback", json=fb, headers=AUTH).status_code == 202
    wait_applied(client, 1)
    cases = client.get("/v1/cases", params={"user_id": "u1"}, headers=AUTH).json()["cases"]
    assert [c["ts"] for c in cases] == [T0]
    sid = cases[0]["case_id"]
    body = {"user_id": "u1", "n": 30, "at": T0 + 60}
    later = client.post("/v1/recommend", json=body, headers=READ_AUTH).json()
    behind = {s for i in later["items"] for s in i["cases"]}
    assert sid in behind
    early = client.post(
        "/v1/recommend", json={**body, "at": T0 - 1}, headers=READ_AUTH
    ).json()  # before the decision: the case is not known yet
    assert not {s for i in early["items"] for s in i["cases"]}


def test_the_decision_is_stored_at_its_at_and_request_events_without_ts_too(
    client: TestClient,
) -> None:
    """The stored decision's time is the request's `at`, and a request event without `ts`
    counts as of `at` (it is in the state: the list changes with it)."""
    _history(client, "u2")
    body: dict[str, Any] = {"user_id": "u2", "n": 5, "at": T0}
    r = client.post("/v1/recommend", json=body, headers=READ_AUTH).json()
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.get_decision(r["decision_id"]).ts == T0
    events = [{"item_id": f"i{k}", "action": "alipay"} for k in (20, 21, 22)]
    with_events = client.post(
        "/v1/recommend", json={**body, "recent_events": events}, headers=READ_AUTH
    ).json()
    assert [i["item_id"] for i in with_events["items"]] != [i["item_id"] for i in r["items"]]


def test_feedback_time_runs_on_the_decision_clock() -> None:
    """Feedback time = decision time + wall seconds since serving; old decisions (no serving
    wall time logged) fall back to the wall clock; never before the decision."""
    d = DecisionSnapshot("d", "u", b"", b"", (), (), "v", T0)
    assert feedback_time(d, served_at=5_000.0, wall_now=5_012.5) == T0 + 12.5
    assert feedback_time(d, served_at=5_000.0, wall_now=4_000.0) == T0
    live = DecisionSnapshot("d", "u", b"", b"", (), (), "v", 5_000.0)
    assert feedback_time(live, served_at=None, wall_now=5_003.0) == 5_003.0
