"""Tests of the web tools against a loopback fake SearxNG server and fake pages (no internet)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.errors import ToolDisabled
from agent.tools import web
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from agent.tools.web import WebConfig, WebFetchError, WebSearchError

ARTICLE_PARAS = [
    "The Nile is a major north-flowing river in northeastern Africa, flowing into the "
    "Mediterranean Sea. It has historically been considered the longest river in the world.",
    "The drainage basin of the Nile covers eleven countries, among them Tanzania, Uganda, "
    "Rwanda, Burundi, Kenya, Ethiopia, Eritrea, South Sudan, Sudan and Egypt.",
    "The river has two major tributaries: the White Nile and the Blue Nile. The White Nile is "
    "traditionally considered to be the headwaters stream of the river.",
    "Ancient Egyptian civilization and Sudanese kingdoms have depended on the river and its "
    "annual flooding since ancient times, for agriculture and for transport.",
]
NAV = "Home Products Pricing Login Newsletter-signup"
SCRIPT = "trackingPixelSecret = 42"
ARTICLE = f"""<!DOCTYPE html><html><head><title>Nile - Fake Encyclopedia</title>
<script>var {SCRIPT};</script><style>body {{ color: red; }}</style></head>
<body><nav><ul>{"".join(f"<li><a href='/{w}'>{w}</a></li>" for w in NAV.split())}</ul></nav>
<main><article><h1>Nile</h1>{"".join(f"<p>{p}</p>" for p in ARTICLE_PARAS)}</article></main>
<footer><a href="/privacy">Privacy policy</a> Copyright Fake Encyclopedia</footer>
</body></html>"""


def _searx_results(query: str, n: int = 8) -> dict[str, Any]:
    rows = [
        {"url": f"https://example.org/{i}", "title": f"{query} result {i}", "content": f"snip {i}"}
        for i in range(n)
    ]
    rows.insert(2, {"url": "https://example.org/0", "title": "duplicate", "content": "dup"})
    rows.insert(3, {"title": "no url", "content": "skipped"})
    return {"query": query, "number_of_results": n, "results": rows}


class _Handler(BaseHTTPRequestHandler):
    """Fake SearxNG (`/search`), a CSE-like template API (`/cse`) and fake pages."""

    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, ctype: str, body: str | bytes, **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        qs = {k: v[0] for k, v in parse_qs(parts.query).items()}
        type(self).requests.append(self.path)
        if parts.path == "/search":
            if qs.get("format") != "json":
                self._send(403, "text/html", "<h1>403 Forbidden</h1>")
            else:
                self._send(200, "application/json", json.dumps(_searx_results(qs["q"])))
        elif parts.path == "/cse":
            items = [{"link": "https://cse.test/a", "title": "A", "snippet": qs["query"]}]
            self._send(200, "application/json", json.dumps({"items": items}))
        elif parts.path == "/notjson":
            self._send(200, "text/html", "<html>hello</html>")
        elif parts.path == "/article":
            self._send(200, "text/html; charset=utf-8", ARTICLE)
        elif parts.path == "/tiny":
            self._send(200, "text/html", "<html><body><p>Just one line.</p></body></html>")
        elif parts.path == "/redirect":
            self._send(302, "text/plain", "", Location="/article")
        elif parts.path == "/loop":
            self._send(302, "text/plain", "", Location="/loop")
        elif parts.path == "/plain":
            self._send(200, "text/plain; charset=utf-8", "plain text body: café")
        elif parts.path == "/data.json":
            self._send(200, "application/json", '{"answer": 42}')
        elif parts.path == "/image.png":
            self._send(200, "image/png", b"\x89PNG\r\n")
        elif parts.path == "/big":
            self._send(200, "text/plain", "x" * 50_000)
        else:
            self._send(404, "text/plain", "not found")


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def fetch_cfg() -> WebConfig:
    return WebConfig(fetch=True, allow_private=True, timeout_s=5)


def test_web_tools_disabled_by_default_say_how_to_enable() -> None:
    """Unconfigured, both functions raise ToolDisabled naming the flag that enables them."""
    with pytest.raises(ToolDisabled, match="--web-search URL"):
        web.web_search("nile")
    with pytest.raises(ToolDisabled, match="--web-fetch"):
        web.web_fetch("https://example.org/")
    assert ToolServerConfig().web_tools == ()


def test_searxng_search_parses_results_and_honours_k(base: str) -> None:
    """SearxNG JSON becomes title/url/snippet hits, deduplicated, URL-less rows dropped, k kept."""
    cfg = WebConfig(search_url=base, timeout_s=5)
    hits = web.web_search("river nile", k=3, cfg=cfg)
    assert [h.url for h in hits] == [f"https://example.org/{i}" for i in range(3)]
    assert hits[0].title == "river nile result 0" and hits[1].snippet == "snip 1"
    assert "/search?q=river+nile&format=json" in _Handler.requests[-1]
    assert len(web.web_search("x", k=100, cfg=cfg)) == 8
    capped = WebConfig(search_url=base + "/search/", k_max=2)
    assert len(web.web_search("x", k=100, cfg=capped)) == 2


def test_search_url_template_and_other_answer_shapes(base: str) -> None:
    """A `{query}` template is filled URL-encoded; CSE `items`, Brave `web.results` parse too."""
    hits = web.web_search("a&b c", cfg=WebConfig(search_url=base + "/cse?query={query}"))
    assert hits == [web.SearchResult("A", "https://cse.test/a", "a&b c")]
    brave = {"web": {"results": [{"url": "https://b.test", "title": "B", "description": "d"}]}}
    assert web.parse_search_results(brave, 5) == [web.SearchResult("B", "https://b.test", "d")]
    bare = [{"href": "https://c.test", "body": "long " * 200}]
    (hit,) = web.parse_search_results(bare, 5, snippet_chars=20)
    assert hit.title == "https://c.test" and len(hit.snippet) == 20
    with pytest.raises(WebSearchError, match="no result list"):
        web.parse_search_results({"answers": []}, 5)


def test_search_errors_are_clear(base: str) -> None:
    """HTTP errors, non-JSON answers and unreachable services raise WebSearchError with a reason."""
    with pytest.raises(WebSearchError, match="HTTP 404"):
        web.web_search("x", cfg=WebConfig(search_url=base + "/nothing?q={query}"))
    with pytest.raises(WebSearchError, match="not JSON"):
        web.web_search("x", cfg=WebConfig(search_url=base + "/notjson?q={query}"))
    with pytest.raises(WebSearchError, match="unreachable"):
        web.web_search("x", cfg=WebConfig(search_url="http://127.0.0.1:9", timeout_s=2))
    with pytest.raises(WebSearchError, match="empty query"):
        web.web_search("  ", cfg=WebConfig(search_url=base))


def test_fetch_extracts_article_and_drops_nav_and_script(base: str, fetch_cfg: WebConfig) -> None:
    """The article paragraphs come back; navigation, script and style do not."""
    page = web.web_fetch(base + "/article", fetch_cfg)
    assert page.title.startswith("Nile") and page.content_type == "text/html"
    for para in ARTICLE_PARAS:
        assert para in page.text
    assert "Pricing" not in page.text and "trackingPixelSecret" not in page.text
    assert "color: red" not in page.text and not page.truncated


def test_fetch_follows_redirects_and_falls_back_on_tiny_pages(
    base: str, fetch_cfg: WebConfig
) -> None:
    """Redirects are followed (final URL reported); a page too small to extract is stripped."""
    page = web.web_fetch(base + "/redirect", fetch_cfg)
    assert page.url == base + "/article" and ARTICLE_PARAS[0] in page.text
    assert web.web_fetch(base + "/tiny", fetch_cfg).text == "Just one line."
    with pytest.raises(WebFetchError, match="redirects"):
        web.web_fetch(base + "/loop", fetch_cfg)


def test_fetch_text_json_and_errors(base: str, fetch_cfg: WebConfig) -> None:
    """Plain text and JSON come back as they are; 404 and images raise WebFetchError."""
    assert web.web_fetch(base + "/plain", fetch_cfg).text == "plain text body: café"
    assert web.web_fetch(base + "/data.json", fetch_cfg).text == '{"answer": 42}'
    with pytest.raises(WebFetchError, match="HTTP 404"):
        web.web_fetch(base + "/missing", fetch_cfg)
    with pytest.raises(WebFetchError, match="unsupported content type 'image/png'"):
        web.web_fetch(base + "/image.png", fetch_cfg)


def test_fetch_truncates_text_and_download(base: str) -> None:
    """Text is cut to max_chars with a note; the download stops at max_bytes."""
    page = web.web_fetch(base + "/big", WebConfig(fetch=True, allow_private=True, max_chars=100))
    assert page.truncated and page.total_chars == 50_000
    assert page.text.startswith("x" * 100) and page.text.endswith("49900 more characters]")
    small = WebConfig(fetch=True, allow_private=True, max_bytes=1000)
    page = web.web_fetch(base + "/big", small)
    assert page.truncated and page.total_chars == 1000 and "stopped at 1000 bytes" in page.text


def test_private_addresses_refused_without_the_switch(base: str) -> None:
    """Loopback, private, link-local and non-http URLs are refused; public literals pass."""
    with pytest.raises(WebFetchError, match=r"non-public address 127\.0\.0\.1"):
        web.web_fetch(base + "/article", WebConfig(fetch=True))
    for url in (
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
        "http://[::1]:80/",
        "http://[::ffff:127.0.0.1]/",
    ):
        with pytest.raises(WebFetchError, match="refused"):
            web.check_url(url)
    for url in ("file:///etc/passwd", "ftp://example.org/x", "http:///nohost"):
        with pytest.raises(WebFetchError, match=r"only http|no host"):
            web.check_url(url)
    web.check_url("https://93.184.216.34/index.html")  # a public literal: no DNS needed
    web.check_url("http://10.1.2.3/", allow_private=True)


def test_mcp_server_registers_and_runs_web_tools(base: str) -> None:
    """Through the MCP server: tools listed only when configured, search and fetch answer."""
    with ToolClient.in_process(ToolServerConfig()) as client:
        assert not {"web_search", "web_fetch"} & {t.name for t in client.list_tools()}
    cfg = ToolServerConfig(web=WebConfig(search_url=base))
    with ToolClient.in_process(cfg) as client:
        names = {t.name for t in client.list_tools()}
        assert "web_search" in names and "web_fetch" not in names
    web_cfg = WebConfig(search_url=base, fetch=True, allow_private=True, timeout_s=5)
    with ToolClient.in_process(ToolServerConfig(web=web_cfg)) as client:
        r = client.call_tool("web_search", {"query": "nile", "k": 2})
        assert r.data is not None and [h["title"] for h in r.data["results"]] == [
            "nile result 0",
            "nile result 1",
        ]
        r = client.call_tool("web_fetch", {"url": base + "/article"})
        assert r.data is not None and ARTICLE_PARAS[2] in r.data["text"]
        r = client.call_tool("web_fetch", {"url": "file:///etc/passwd"})
        assert r.is_error and "WebFetchError" in r.text


def test_stdio_server_flags_enable_web_tools(base: str) -> None:
    """`--web-search URL --web-fetch --web-allow-private` on the server command line work."""
    flags = ["--web-search", base, "--web-fetch", "--web-allow-private"]
    with ToolClient.stdio(extra_args=flags, timeout_s=60) as client:
        assert {"web_search", "web_fetch"} <= {t.name for t in client.list_tools()}
        r = client.call_tool("web_search", {"query": "q", "k": 1})
        assert r.data is not None and len(r.data["results"]) == 1
        r = client.call_tool("web_fetch", {"url": base + "/plain"})
        assert r.data is not None and r.data["text"] == "plain text body: café"
