"""The `/ui` page in a real browser (Playwright driving the system Chromium) against a real
uvicorn server: recommend and explain, delete a case, erase a user, a chart that moves after
feedback, and the messages for a missing key, an unknown user and a service not ready.

Screenshots of each view land in `test-artifacts/ui/` (gitignored)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.process import ServerProcess, free_port
from serving.testing import AUTH, READ_AUTH, TEST_API_KEY, TEST_READ_API_KEY, server_env

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("MEMENTO_CHROMIUM") or next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
)
if CHROMIUM is None:
    pytest.skip("no system Chromium: apt-get install chromium", allow_module_level=True)
if not (REPO / "serving/ui/static/vendor/htmx.min.js").is_file():
    pytest.skip("UI assets not built: bash serving/ui/assets/build.sh", allow_module_level=True)

Page = Any
"""`playwright.sync_api.Page` (imported lazily: the module skips without playwright)."""


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server with two users' histories and feedback cases."""
    tmp = tmp_path_factory.mktemp("ui")
    with ServerProcess(server_env(tmp / "db.sqlite3"), log=tmp / "server.log") as proc:
        with httpx.Client(base_url=proc.url, timeout=10.0) as c:
            for user, items in (("alice", ["p1", "a1", "l1"]), ("bob", ["k1", "k2", "e1"])):
                events = [{"item_id": i, "action": "click"} for i in items]
                c.post("/v1/events", json={"user_id": user, "events": events}, headers=AUTH)
                d = c.post("/v1/recommend", json={"user_id": user, "n": 5}, headers=READ_AUTH)
                for it in d.json()["items"][:3]:
                    body = {
                        "decision_id": d.json()["decision_id"],
                        "item_id": it["item_id"],
                        "action": "alipay",
                        "idempotency_key": uuid.uuid4().hex,
                    }
                    assert c.post("/v1/feedback", json=body, headers=AUTH).status_code == 202
            deadline = time.monotonic() + 20
            while (
                len(c.get("/v1/cases", params={"user_id": "alice"}, headers=AUTH).json()["cases"])
                < 3
            ):
                assert time.monotonic() < deadline, "feedback cases not written"
                time.sleep(0.1)
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    """A fresh page (own session storage), confirm dialogs accepted."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.on("dialog", lambda d: d.accept())
    yield p
    context.close()


def _open(page: Page, server: ServerProcess, key: str = "") -> None:
    page.goto(server.url + "/ui")
    sync_api.expect(page.locator("h1")).to_have_text("memento")
    if key:
        page.fill("#api-key", key)


def _recommend(page: Page, user: str) -> None:
    page.fill("#user-id", user)
    page.click("#recommend-btn")


def test_recommend_and_open_explanation(ui_server: ServerProcess, page: Page) -> None:
    """A user's list shows, and an item's cases show Q, policy probability and similarity."""
    _open(page, ui_server, TEST_READ_API_KEY)
    _recommend(page, "alice")
    sync_api.expect(page.locator("#decision li.item").first).to_be_visible()
    explain = page.locator("button.explain-btn").first
    explain.click()
    why = page.locator("li.item.open .why table.cases")
    sync_api.expect(why).to_be_visible()
    header = why.locator("thead").inner_text()
    for column in ("state summary", "outcome", "reward", "Q", "policy p", "similarity", "age"):
        assert column in header, header
    sync_api.expect(why.locator("tbody tr").first).to_contain_text("alipay")
    sync_api.expect(page.locator("#decision .state")).to_contain_text("alice")
    _shot(page, "explanation")


def test_missing_key_and_unknown_user_messages(ui_server: ServerProcess, page: Page) -> None:
    """No key -> a 'Missing key' box; an unknown user -> the cold-start notice, not a blank."""
    _open(page, ui_server)
    _recommend(page, "alice")
    sync_api.expect(page.locator("#recommend-result .error")).to_contain_text("Missing key")
    _shot(page, "missing-key")
    page.fill("#api-key", "wrong-key")
    _recommend(page, "alice")
    sync_api.expect(page.locator("#recommend-result .error")).to_contain_text("Wrong key")
    page.fill("#api-key", TEST_READ_API_KEY)
    _recommend(page, "nobody-" + uuid.uuid4().hex[:6])
    sync_api.expect(page.locator("#cold-notice")).to_contain_text("Unknown user")
    _shot(page, "unknown-user")


def test_delete_case_and_see_it_gone(ui_server: ServerProcess, page: Page) -> None:
    """Deleting a case in the memory browser drops its row and the API then answers 404."""
    _open(page, ui_server, TEST_API_KEY)
    page.click("button.tab[data-tab=memory]")
    page.fill("#search-user", "alice")
    page.click("#search-btn")
    rows = page.locator("#cases-result tr.case-row")
    sync_api.expect(rows.first).to_be_visible()
    before = rows.count()
    case_id = rows.first.get_attribute("data-case")
    rows.first.locator("a.case-link").click()
    sync_api.expect(page.locator("#case-view")).to_contain_text("written")
    _shot(page, "memory")
    rows.first.locator("button.delete").click()
    sync_api.expect(page.locator(f'tr.deleted[data-deleted="{case_id}"]')).to_be_visible()
    sync_api.expect(rows).to_have_count(before - 1)
    r = httpx.get(f"{ui_server.url}/v1/cases/{case_id}", headers=AUTH)
    assert r.status_code == 404, r.text
    page.click("#search-btn")
    sync_api.expect(page.locator(f'tr.case-row[data-case="{case_id}"]')).to_have_count(0)


def test_erase_user_reflected_at_once(ui_server: ServerProcess, page: Page) -> None:
    """Erasing a user (after confirming) empties the page's list and the API's at once."""
    _open(page, ui_server, TEST_API_KEY)
    page.click("button.tab[data-tab=memory]")
    page.fill("#search-user", "bob")
    page.click("#search-btn")
    sync_api.expect(page.locator("#cases-result tr.case-row").first).to_be_visible()
    page.fill("#erase-user", "bob")
    page.click("#erase-btn")
    sync_api.expect(page.locator("#erased")).to_contain_text("erased")
    sync_api.expect(page.locator("#cases-result .error")).to_contain_text("No live cases")
    r = httpx.get(f"{ui_server.url}/v1/cases", params={"user_id": "bob"}, headers=AUTH)
    assert r.json()["cases"] == []
    page.click("#erase-btn")  # again: nothing left
    sync_api.expect(page.locator("#erase-result .error")).to_contain_text("Unknown user")
    _shot(page, "erased")


def test_chart_updates_after_feedback(ui_server: ServerProcess, page: Page) -> None:
    """Feedback given on the page moves the update count and the reward/TD-loss charts; the
    dashboard shows the greedy top-1 share."""
    _open(page, ui_server, TEST_API_KEY)
    _recommend(page, "alice")
    sync_api.expect(page.locator("#decision li.item").first).to_be_visible()
    stats = httpx.get(f"{ui_server.url}/ui/api/stats", timeout=30).json()
    assert stats["policy_entropy"] is not None and stats["policy_entropy"] > 0, stats
    page.click("button.tab[data-tab=dashboard]")
    sync_api.expect(page.locator("#model-version")).not_to_have_text("…")
    page.wait_for_function("document.body.dataset.updates !== undefined")
    updates = float(page.evaluate("document.body.dataset.updates"))
    page.click("button.tab[data-tab=recommend]")
    page.locator("#decision li.item button.fb", has_text="cart").first.click()
    sync_api.expect(page.locator("#feedback-result .notice")).to_contain_text("sent")
    page.click("button.tab[data-tab=dashboard]")
    page.wait_for_function(f"Number(document.body.dataset.updates) > {updates}", timeout=20000)
    page.wait_for_timeout(1500)  # two more polls: the new point is drawn
    series = page.evaluate("window.mementoCharts.td.data.datasets[0].data")
    assert any(v is not None for v in series), series
    assert page.evaluate("window.mementoCharts.queue.data.datasets[0].data.length") >= 2
    share = httpx.get(f"{ui_server.url}/ui/api/stats", timeout=30).json()["greedy_top1_share"]
    assert share is not None and 0.0 <= share <= 1.0
    sync_api.expect(page.locator("#greedy-note")).to_contain_text("share ")
    _shot(page, "dashboard")


@pytest.fixture(scope="module")
def not_ready_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An in-thread uvicorn server whose core reports it is not ready."""
    import uvicorn
    from pydantic import SecretStr

    from serving.app import create_app
    from serving.settings import ServingSettings
    from tests.serving.fake_core import FakeCore

    tmp = tmp_path_factory.mktemp("nr")
    settings = ServingSettings(
        api_key=SecretStr(TEST_API_KEY),
        read_api_key=SecretStr(TEST_READ_API_KEY),
        db_path=tmp / "db.sqlite3",
        decision_flush_ms=0,
        blas_threads=0,
    )
    app = create_app(settings, core=FakeCore(ready_reason="no model: run `memento train`"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_service_not_ready_message(not_ready_url: str, page: Page) -> None:
    """A core that is not ready gives a 'Service not ready' box naming what to run."""
    page.goto(not_ready_url + "/ui")
    page.fill("#api-key", TEST_READ_API_KEY)
    _recommend(page, "alice")
    box = page.locator("#recommend-result .error")
    sync_api.expect(box).to_contain_text("Service not ready")
    sync_api.expect(box).to_contain_text("memento train")
    page.click("button.tab[data-tab=dashboard]")
    sync_api.expect(page.locator("#dash-status .error")).to_contain_text("not ready")
    _shot(page, "not-ready")


@pytest.fixture(scope="module")
def bundle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on a model bundle whose cases live only in its bank, as a registered
    champion's do (`memento train`), with the items scorer that training ships."""
    from recsys.records import Case
    from serving.model_source import SNAPSHOT_DIR, fresh_bundle
    from serving.settings import ServingSettings

    tmp = tmp_path_factory.mktemp("ui-bundle")
    env = server_env(tmp / "db.sqlite3", MEMENTO_FRESH__RECOMMEND__SCORER="items")
    settings = ServingSettings(
        fresh={"text": {"kind": "hashing"}, "recommend": {"scorer": "items"}},
        items_path=Path(env["MEMENTO_ITEMS_PATH"]),
    )
    bundle = fresh_bundle(settings)
    rows = bundle.items.rows(["p1", "a1", "l1"])
    cases = [
        Case(
            key=bundle.items.vecs[r],
            payload={"item_id": i, "action": "click", "sid": f"e{n}", "user_id": "carol"},
            reward=0.1,
            ts=time.time() - 86_400 * 400,
            source="replay",
        )
        for n, (r, i) in enumerate(zip(rows, ["p1", "a1", "l1"], strict=True))
    ]
    bundle.bank.write_batch(cases)
    bundle.save(tmp / "checkpoints" / SNAPSHOT_DIR)
    with ServerProcess(env, log=tmp / "server.log") as proc:
        yield proc


def test_bundle_cases_explain_and_browse(bundle_server: ServerProcess, page: Page) -> None:
    """A loaded bundle's own cases (not in the case log) explain a list whose first item is
    marked as an exploration slot, show in the memory browser and open, without a 500 when
    the core cannot value them."""
    _open(page, bundle_server, TEST_API_KEY)
    page.fill("input[name=events]", "p1, a1")
    _recommend(page, "carol")
    first = page.locator("#decision li.item").first
    sync_api.expect(first.locator(".explore-tag")).to_have_text("explore")
    assert 1 <= page.locator("#decision li.item.explored").count() <= 2  # explore_slots
    page.locator("button.explain-btn").first.click()
    why = page.locator("li.item.open .why table.cases")
    sync_api.expect(why.locator("tbody tr").first).to_contain_text("click")
    page.click("button.tab[data-tab=memory]")
    page.fill("#search-user", "carol")
    page.click("#search-btn")
    sync_api.expect(page.locator("#cases-result tr.case-row")).to_have_count(3)
    page.locator("#cases-result a.case-link", has_text="e0").click()
    detail = page.locator("#case-detail")
    sync_api.expect(detail).to_contain_text("source replay")
    _shot(page, "bundle-cases")
    # the case API values an items-scorer bundle's cases too (it answered 500 before)
    auth = {"Authorization": f"Bearer {TEST_API_KEY}"}
    one = httpx.get(f"{bundle_server.url}/v1/cases/e0", headers=auth, timeout=30)
    assert one.status_code == 200, one.text
    listed = httpx.get(f"{bundle_server.url}/v1/cases", params={"user_id": "carol"}, headers=auth)
    assert listed.status_code == 200 and len(listed.json()["cases"]) == 3, listed.text
