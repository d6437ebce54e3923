"""The HTTP layer in-process on `FakeCore`: keys, readiness, error shape, id validation, OpenAPI."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.schemas import ErrorOut
from serving.service import RecommenderBackend
from serving.settings import ServingSettings
from serving.testing import AUTH, READ_AUTH, TEST_API_KEY, TEST_READ_API_KEY
from tests.serving.fake_core import DEFAULT_CATALOGUE, FakeCore

WRONG = {"Authorization": "Bearer not-a-key"}
NOT_READY = "no model and no catalogue: run `memento train` or set MEMENTO_ITEMS_PATH"


def _settings(tmp_path: Path, public: bool = False) -> ServingSettings:
    return ServingSettings(
        api_key=TEST_API_KEY,
        read_api_key=TEST_READ_API_KEY,
        public_recommend=public,
        production=False,
        db_path=tmp_path / "db.sqlite3",
        decision_flush_ms=0,
        blas_threads=0,
    )


@pytest.fixture
def core() -> FakeCore:
    """A ready fake core over the default catalogue."""
    return FakeCore()


@pytest.fixture
def client(tmp_path: Path, core: FakeCore) -> Iterator[TestClient]:
    """The app on the fake core, lifespan running."""
    with TestClient(create_app(_settings(tmp_path), core=core)) as c:
        yield c


def test_fake_core_satisfies_the_protocol() -> None:
    """The fake is a structural `RecommenderBackend`, readiness included."""
    assert isinstance(FakeCore(), RecommenderBackend)
    assert FakeCore(ready_reason="x").not_ready_reason() == "x"


def test_recommend_needs_the_read_or_write_key(client: TestClient) -> None:
    """Recommend: no key 401, wrong key 403, read key 200, write key 200."""
    body = {"user_id": "u"}
    missing = client.post("/v1/recommend", json=body)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = client.post("/v1/recommend", json=body, headers=WRONG)
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert client.post("/v1/recommend", json=body, headers=READ_AUTH).status_code == 200
    assert client.post("/v1/recommend", json=body, headers=AUTH).status_code == 200


def test_read_key_does_not_open_write_routes(client: TestClient) -> None:
    """The read key is refused (403) on events, feedback, cases and admin routes."""
    events = {"user_id": "u", "events": [{"item_id": "i1"}]}
    assert client.post("/v1/events", json=events, headers=READ_AUTH).status_code == 403
    assert client.get("/v1/cases", params={"user_id": "u"}, headers=READ_AUTH).status_code == 403
    assert client.post("/v1/admin/reload", headers=READ_AUTH).status_code == 403
    assert client.post("/v1/events", json=events, headers=AUTH).status_code == 202


def test_public_mode_opens_recommend_only(tmp_path: Path) -> None:
    """MEMENTO_PUBLIC_RECOMMEND: recommend answers 200 without a key; write routes stay keyed."""
    app = create_app(_settings(tmp_path, public=True), core=FakeCore())
    with TestClient(app) as c:
        assert c.post("/v1/recommend", json={"user_id": "u"}).status_code == 200
        assert c.post("/v1/admin/reload").status_code == 401
        op = c.get("/openapi.json").json()["paths"]["/v1/recommend"]["post"]
    assert "security" not in op and not {"401", "403"} & set(op["responses"])


def test_not_ready_core_gives_503_with_its_reason(client: TestClient, core: FakeCore) -> None:
    """A core with a not-ready reason: /readyz and /v1/recommend answer 503 with it; then 200."""
    core.ready_reason = NOT_READY
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready", "message": NOT_READY}
    r = client.post("/v1/recommend", json={"user_id": "u"}, headers=READ_AUTH)
    assert r.status_code == 503
    assert r.json() == {"error": "not_ready", "message": NOT_READY}
    core.ready_reason = None
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert "message" not in ready.json()
    r = client.post("/v1/recommend", json={"user_id": "u", "n": 2}, headers=READ_AUTH)
    assert r.status_code == 200
    assert [i["item_id"] for i in r.json()["items"]] == list(DEFAULT_CATALOGUE)[:2]


def test_feedback_reaches_the_core(client: TestClient, core: FakeCore) -> None:
    """A decision's feedback goes through the store and the learner thread to the core."""
    client.post("/v1/events", json={"user_id": "u", "events": [{"item_id": "i3"}]}, headers=AUTH)
    d = client.post("/v1/recommend", json={"user_id": "u", "n": 1}, headers=READ_AUTH).json()
    assert [i["item_id"] for i in d["items"]] == ["i3"], "popularity ranks the seen item first"
    fb = {
        "decision_id": d["decision_id"],
        "item_id": "i3",
        "action": "cart",
        "idempotency_key": "k",
    }
    assert client.post("/v1/feedback", json=fb, headers=AUTH).status_code == 202
    deadline = time.monotonic() + 5
    while not core.feedback and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.feedback == [(d["decision_id"], "i3", "cart")]


def test_hot_routes_take_one_thread_pool_hop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recommend and feedback each run one function in the thread pool (the route): the key
    check, the service lookup and the answer's serialisation add no hop."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        inner = func.keywords.get("function", func.func) if isinstance(func, partial) else func
        hops.append(getattr(inner, "__name__", repr(inner)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    r = client.post("/v1/recommend", json={"user_id": "u", "n": 1}, headers=READ_AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert hops == ["recommend"], hops
    hops.clear()
    fb = {
        "decision_id": r.json()["decision_id"],
        "item_id": r.json()["items"][0]["item_id"],
        "action": "click",
        "idempotency_key": "one-hop",
    }
    answer = client.post("/v1/feedback", json=fb, headers=AUTH)
    assert answer.status_code == 202 and answer.json()["duplicate"] is False
    assert hops == ["feedback"], hops


def test_validation_errors_match_the_documented_schema(client: TestClient) -> None:
    """A 422 carries `details` (loc, msg, type) and validates against `ErrorOut`."""
    r = client.post("/v1/recommend", json={"user_id": "u", "n": 0, "x": 1}, headers=READ_AUTH)
    assert r.status_code == 422
    err = ErrorOut.model_validate(r.json())
    assert err.error == "validation_error" and err.details is not None
    assert {tuple(d.loc) for d in err.details} == {("body", "n"), ("body", "x")}
    assert "n" in err.message and "x" in err.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "a\x00b"}, "user_id"),
        ({"user_id": "line\nbreak"}, "user_id"),
        ({"user_id": "del\x7f"}, "user_id"),
        ({"user_id": "c1\x85"}, "user_id"),
        ({"user_id": "sep\u2028"}, "user_id"),
        ({"user_id": "u", "exclude_items": ["ok", "tab\there"]}, "exclude_items.1"),
        ({"user_id": "u", "context": {"k\x01": "v"}}, "context"),
        ({"user_id": "x" * 129}, "user_id"),
        ({"user_id": ""}, "user_id"),
    ],
)
def test_ids_must_be_printable_and_bounded(client: TestClient, body: dict, field: str) -> None:
    """Ids with control characters, separators, or outside 1..128 characters get a clear 422."""
    r = client.post("/v1/recommend", json=body, headers=READ_AUTH)
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert field in message, message
    assert "printable" in message or "character" in message, message


def test_lone_surrogate_and_unicode_ids(client: TestClient) -> None:
    """A lone surrogate id is a 422 (never a 500); printable Unicode ids of 128 chars are fine."""
    raw = b'{"user_id": "\\ud800"}'
    headers = {"content-type": "application/json", **READ_AUTH}
    r = client.post("/v1/recommend", content=raw, headers=headers)
    assert r.status_code == 422 and "user_id" in r.json()["message"], r.text
    for user in ("用户-é 1", "😀" * 128, " "):
        assert client.post("/v1/recommend", json={"user_id": user}, headers=READ_AUTH).is_success


def test_path_and_query_ids_are_validated(client: TestClient) -> None:
    """Ids in the path and the query follow the same rule: control characters give 422."""
    for r in (
        client.get("/v1/cases/a%01b", headers=AUTH),
        client.delete("/v1/users/a%7Fb", headers=AUTH),
        client.get("/v1/cases", params={"user_id": "a\x1bb"}, headers=AUTH),
    ):
        assert r.status_code == 422 and "printable" in r.json()["message"], r.text
    assert client.get("/v1/cases/no-such-case", headers=AUTH).status_code == 404


def test_openapi_declares_every_error_status(client: TestClient) -> None:
    """Each route documents the error statuses it can send, all with the `ErrorOut` schema."""
    spec = client.get("/openapi.json").json()
    expected = {
        ("post", "/v1/recommend"): {"400", "401", "403", "413", "422", "503"},
        ("post", "/v1/feedback"): {"400", "401", "403", "404", "409", "413", "422", "503"},
        ("post", "/v1/events"): {"400", "401", "403", "413", "422", "503"},
        ("get", "/v1/cases"): {"401", "403", "422", "503"},
        ("post", "/v1/cases"): {"400", "401", "403", "413", "422", "503"},
        ("get", "/v1/cases/{case_id}"): {"401", "403", "404", "422", "503"},
        ("delete", "/v1/cases/{case_id}"): {"401", "403", "404", "422", "503"},
        ("delete", "/v1/users/{user_id}"): {"401", "403", "404", "422", "503"},
        ("post", "/v1/admin/reload"): {"401", "403", "503"},
    }
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        errors = {s for s in responses if s >= "400"}
        assert errors == statuses, (method, path, errors)
        for s in statuses:
            ref = responses[s]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorOut", (method, path, s)
    error_out = spec["components"]["schemas"]["ErrorOut"]
    assert set(error_out["properties"]) == {"error", "message", "details"}
    user_id = spec["components"]["schemas"]["RecommendRequest"]["properties"]["user_id"]
    assert user_id["maxLength"] == 128 and user_id["pattern"].startswith("^[^\\x00-\\x1F")


def test_core_errors_map_through_the_one_table(
    client: TestClient, core: FakeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A core (recsys) error reaching a route answers its `ERROR_STATUS` code with a message,
    not a 500: a broken bundle is 503, an unknown case 404."""
    from recsys.errors import BundleError, CaseNotFoundError

    def broken(*_a: object, **_k: object) -> None:
        raise BundleError("bundle format 9, this version reads 1")

    monkeypatch.setattr(core, "recommend", broken)
    r = client.post("/v1/recommend", json={"user_id": "u"}, headers=READ_AUTH)
    assert r.status_code == 503, r.text
    assert r.json() == {"error": "bundle", "message": "bundle format 9, this version reads 1"}

    def missing(*_a: object, **_k: object) -> None:
        raise CaseNotFoundError("no case 7")

    monkeypatch.setattr(core, "get_case", missing)
    r = client.get("/v1/cases/c7", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "casenotfound", r.text
