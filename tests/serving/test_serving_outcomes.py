"""`POST /v1/outcomes`: a decision closes with every shown item, the ignored ones as
zero-reward evidence; idempotent per decision; bad input answers 4xx with a message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.testing import AUTH, READ_AUTH
from tests.serving.test_serving_clock import T0, _history, client_for, wait_applied


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on the real core, lifespan running."""
    with client_for(tmp_path) as c:
        yield c


def _decide(c: TestClient, user: str, at: float = T0) -> dict[str, Any]:
    _history(c, user)
    body = {"user_id": user, "n": 5, "at": at}
    out: dict[str, Any] = c.post("/v1/recommend", json=body, headers=READ_AUTH).json()
    return out


def _outcome(c: TestClient, decision: dict[str, Any], acted: dict[str, str]) -> Any:
    imps = [{"item_id": i["item_id"], "action": acted.get(i["item_id"])} for i in decision["items"]]
    body = {"decision_id": decision["decision_id"], "impressions": imps[::-1]}  # any order
    return c.post("/v1/outcomes", json=body, headers=AUTH)


def test_an_outcome_stores_every_shown_item_once_with_its_propensity(client: TestClient) -> None:
    """One bought item and four ignored: 202 with the five in list order, the logged
    propensities, and five cases at the decision time (one rewarded, four zero-reward
    impressions); a repeat is a duplicate with the same rows and stores nothing."""
    d = _decide(client, "u1")
    shown = [i["item_id"] for i in d["items"]]
    r = _outcome(client, d, {shown[1]: "alipay"})
    assert r.status_code == 202, r.text
    out = r.json()
    assert not out["duplicate"]
    assert [i["item_id"] for i in out["impressions"]] == shown
    assert [i["position"] for i in out["impressions"]] == list(range(5))
    assert [i["action"] for i in out["impressions"]] == [None, "alipay", None, None, None]
    assert [i["propensity"] for i in out["impressions"]] == [i["propensity"] for i in d["items"]]
    wait_applied(client, 5)
    cases = client.get("/v1/cases", params={"user_id": "u1"}, headers=AUTH).json()["cases"]
    by_item = {c["items"][0]: c for c in cases}
    assert set(by_item) == set(shown) and {c["ts"] for c in cases} == {T0}
    assert by_item[shown[1]]["reward"] > 0 and by_item[shown[1]]["source"] == "feedback"
    assert all(
        by_item[i]["reward"] == 0 and by_item[i]["source"] == "impression" for i in shown[::2]
    )
    again = _outcome(client, d, {shown[1]: "alipay"}).json()
    assert again["duplicate"]
    assert [i["feedback_id"] for i in again["impressions"]] == [
        i["feedback_id"] for i in out["impressions"]
    ]
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert len(store.feedback()) == 5


def test_a_decision_with_no_click_makes_one_learning_step(client: TestClient) -> None:
    """Five ignored items: no step until the last row, then exactly one, every item at 0."""
    core = client.app.state.service.core  # type: ignore[attr-defined]
    loop = core.runtime.rec.loop
    seen: list[Any] = []
    learn = loop.learn

    def spy(*args: Any) -> Any:
        seen.append(args)
        return learn(*args)

    loop.learn = spy
    d = _decide(client, "u2")
    assert _outcome(client, d, {}).status_code == 202
    wait_applied(client, 5)
    assert len(seen) == 1
    decided, rewards = seen[0][0], seen[0][1]
    assert len(decided.chosen) == 5 and not rewards.any()


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ("unknown", 404, "unknown decision_id"),
        ("foreign", 409, "were not recommended"),
        ("missing", 422, "missing ["),
        ("twice", 422, "repeated ["),
        ("action", 422, "impressions.0.action"),
    ],
)
def test_bad_outcomes_answer_4xx_with_a_message(
    client: TestClient, change: str, status: int, words: str
) -> None:
    """Unknown decision 404, an item not shown 409, a shown item missing or repeated 422
    (naming it), an unknown action 422; nothing is stored."""
    d = _decide(client, "u3")
    imps: list[dict[str, Any]] = [{"item_id": i["item_id"]} for i in d["items"]]
    body: dict[str, Any] = {"decision_id": d["decision_id"], "impressions": imps}
    if change == "unknown":
        body["decision_id"] = "no-such-decision"
    elif change == "foreign":
        imps[0] = {"item_id": "i-not-shown"}
    elif change == "missing":
        body["impressions"] = imps[1:]
    elif change == "twice":
        body["impressions"] = [*imps, imps[0]]
    else:
        imps[0] = {**imps[0], "action": "like"}
    r = client.post("/v1/outcomes", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.feedback() == []


def test_the_ui_closes_the_list_with_an_outcome(client: TestClient) -> None:
    """The page's action button sends the whole list's outcome (the item with its action, the
    rest not chosen); a second press changes nothing; "none of these" closes a list too."""
    d = _decide(client, "u4")
    shown = [i["item_id"] for i in d["items"]]
    form = {"decision_id": d["decision_id"], "item_id": shown[2], "action": "cart"}
    r = client.post("/ui/outcome", data=form, headers=AUTH)
    assert r.status_code == 200 and "cart on" in r.text and "4 other items" in r.text
    store = client.app.state.service.store  # type: ignore[attr-defined]
    rows = {f.item_id: f.action for f in store.feedback()}
    assert rows == {i: "cart" if i == shown[2] else "impression" for i in shown}
    again = client.post("/ui/outcome", data=form, headers=AUTH)
    assert "closed already" in again.text and len(store.feedback()) == 5
    other = _decide(client, "u5", at=T0 + 5)
    none = {"decision_id": other["decision_id"], "item_id": "", "action": "click"}
    assert "5 items recorded" in client.post("/ui/outcome", data=none, headers=AUTH).text
    assert len(store.feedback()) == 10
