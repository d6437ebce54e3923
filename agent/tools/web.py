"""Web search and page fetch for the research agent: optional tools, OFF by default.

Nothing here touches the network unless the tool server is started with `--web-search URL`
(a SearxNG instance or another JSON search API) and/or `--web-fetch` (page download with main-text
extraction by trafilatura). Unconfigured, both functions raise `ToolDisabled` saying how to enable
them.

- `web_search` GETs `{url}/search?q=...&format=json` (SearxNG), or the URL itself with `{query}`
  replaced when it holds that placeholder (other APIs: Google CSE, SerpAPI, a self-hosted
  proxy...). The answer may be SearxNG's `{"results": [{url, title, content}]}` or a similar
  shape (`items`, `organic_results`, `web.results`, a bare list; `link`/`href`, `snippet`/
  `description`). The search URL is trusted: it is the user's own service, often on localhost.
- `web_fetch` only follows http(s), checks every hop of a redirect chain, refuses hosts that
  resolve to private, loopback, link-local or reserved addresses (SSRF) unless
  `WebConfig.allow_private`, caps the download size and time, extracts the main text of HTML
  (a plain tag strip when extraction finds nothing) and returns text/JSON/XML as they are and
  PDFs through `readers`. The address check resolves the name before the request, so a DNS
  server that answers differently the second time (rebinding) is not covered.
"""

from __future__ import annotations

import ipaddress
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

import httpx

from agent.errors import ToolDisabled, ToolFailure, WebFetchError, WebSearchError

__all__ = [
    "SearchResult",
    "WebConfig",
    "WebFetchError",
    "WebPage",
    "WebSearchError",
    "check_url",
    "parse_search_results",
    "web_fetch",
    "web_search",
]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("application/json", "application/xml", "application/rss+xml", "application/atom+xml")
_LIST_KEYS = ("results", "items", "organic_results", "organic", "hits", "data")
_URL_KEYS = ("url", "link", "href")
_TITLE_KEYS = ("title", "name")
_SNIPPET_KEYS = ("content", "snippet", "description", "body", "text")


@dataclass(frozen=True)
class WebConfig:
    """Web tools of the tool server; the defaults keep both off."""

    search_url: str | None = None
    """SearxNG base URL (`/search?q=..&format=json` is appended) or a URL template holding
    `{query}`; None disables `web_search`."""
    fetch: bool = False
    """Enable `web_fetch` (download a page and extract its text)."""
    allow_private: bool = False
    """Let `web_fetch` reach private/loopback/link-local addresses (tests, intranets)."""
    timeout_s: float = 15.0
    """Connect/read timeout of one HTTP request."""
    max_bytes: int = 3_000_000
    """`web_fetch` stops downloading after this many bytes."""
    max_chars: int = 20_000
    """`web_fetch` returns at most this many characters of text."""
    max_redirects: int = 5
    """Redirects `web_fetch` follows (each hop is checked like the first URL)."""
    k_max: int = 10
    """Upper bound on `k` of `web_search`."""
    snippet_chars: int = 400
    """Snippets of `web_search` are cut to this width."""
    user_agent: str = "memento-agent/1.0 (research agent)"
    """User-Agent header sent with every request."""


@dataclass(frozen=True)
class SearchResult:
    """One web search hit."""

    title: str
    url: str
    snippet: str


@dataclass(frozen=True)
class WebPage:
    """Text of a fetched page."""

    url: str
    """Final URL after redirects."""
    title: str
    """Page title ("" when the page has none, e.g. plain text)."""
    content_type: str
    """MIME type from the Content-Type header, without parameters."""
    text: str
    """At most `WebConfig.max_chars` characters, with a note at the end when cut."""
    total_chars: int
    """Length of the whole extracted text."""
    truncated: bool
    """Whether `text` (or the download, at `max_bytes`) was cut."""


def _disabled(name: str, flag: str) -> ToolDisabled:
    return ToolDisabled(
        f"{name} is disabled: web tools are off by default. Start the tool server with {flag} "
        "(web_search: `--web-search URL` of a SearxNG-compatible service; web_fetch: "
        "`--web-fetch`). Use `search` over the local document collection instead."
    )


# -- search -------------------------------------------------------------------------------------
def _search_request(base: str, query: str) -> tuple[str, dict[str, str]]:
    """URL and query parameters for `query` against the configured search URL."""
    if "{query}" in base:
        return base.replace("{query}", quote_plus(query)), {}
    url = base.rstrip("/")
    if not urlsplit(url).path.endswith("/search"):
        url += "/search"
    return url, {"q": query, "format": "json"}


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return ""


def _result_items(payload: Any) -> list[Any]:
    """The list of hits inside a search API answer (SearxNG, CSE, SerpAPI, Brave, bare list)."""
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        raise WebSearchError(f"search answer is a JSON {type(payload).__name__}, not an object")
    for key in _LIST_KEYS:
        if isinstance(payload.get(key), list):
            return list(payload[key])
    web = payload.get("web")
    if isinstance(web, dict) and isinstance(web.get("results"), list):
        return list(web["results"])
    raise WebSearchError(
        f"search answer holds no result list (looked for {', '.join(_LIST_KEYS)}, web.results); "
        f"keys: {sorted(payload)[:10]}"
    )


def parse_search_results(payload: Any, k: int, snippet_chars: int = 400) -> list[SearchResult]:
    """At most `k` hits (with a URL, deduplicated) from a decoded search API answer."""
    out: list[SearchResult] = []
    seen: set[str] = set()
    for item in _result_items(payload):
        if not isinstance(item, dict):
            continue
        url = _first(item, _URL_KEYS)
        if not url or url in seen:
            continue
        seen.add(url)
        snippet = _first(item, _SNIPPET_KEYS)[:snippet_chars]
        out.append(SearchResult(title=_first(item, _TITLE_KEYS) or url, url=url, snippet=snippet))
        if len(out) >= k:
            break
    return out


def web_search(query: str, k: int = 5, cfg: WebConfig | None = None) -> list[SearchResult]:
    """Search the web through the configured service; raises `ToolDisabled` when unconfigured."""
    cfg = cfg or WebConfig()
    if cfg.search_url is None:
        raise _disabled("web_search", "`--web-search URL`")
    if not query.strip():
        raise WebSearchError("empty query")
    k = max(1, min(int(k), cfg.k_max))
    url, params = _search_request(cfg.search_url, query)
    headers = {"User-Agent": cfg.user_agent, "Accept": "application/json"}
    try:
        with httpx.Client(timeout=cfg.timeout_s, follow_redirects=True, headers=headers) as http:
            resp = http.get(url, params=params or None)
    except httpx.TimeoutException:
        raise WebSearchError(f"search service timed out after {cfg.timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise WebSearchError(f"search service unreachable: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        hint = " (SearxNG: add `json` to search.formats in settings.yml)" if params else ""
        raise WebSearchError(f"search service answered HTTP {resp.status_code}{hint}")
    try:
        payload = resp.json()
    except ValueError:
        raise WebSearchError("search service answered something that is not JSON") from None
    return parse_search_results(payload, k, cfg.snippet_chars)


# -- fetch --------------------------------------------------------------------------------------
def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise `WebFetchError` unless `url` is http(s) to a host with only public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebFetchError(f"only http and https URLs can be fetched, not {url!r}")
    host = parts.hostname
    if not host:
        raise WebFetchError(f"no host in URL {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebFetchError(f"cannot resolve host {host!r}: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not _is_public(ip):
            raise WebFetchError(
                f"refused: {host!r} resolves to the non-public address {ip} (private, loopback "
                "or reserved addresses are blocked; the server's --web-allow-private lifts this)"
            )


def _read_capped(chunks: Iterator[bytes], max_bytes: int) -> tuple[bytes, bool]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            return bytes(buf[:max_bytes]), True
    return bytes(buf), False


def _download(url: str, cfg: WebConfig) -> tuple[str, str, bytes, str | None, bool]:
    """(final URL, content type, body, charset, body cut) following checked redirects."""
    headers = {"User-Agent": cfg.user_agent, "Accept": "text/html,text/plain,*/*;q=0.8"}
    with httpx.Client(timeout=cfg.timeout_s, follow_redirects=False, headers=headers) as http:
        for _ in range(cfg.max_redirects + 1):
            check_url(url, cfg.allow_private)
            with http.stream("GET", url) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code >= 400:
                    raise WebFetchError(f"HTTP {resp.status_code} for {url}")
                ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                body, cut = _read_capped(resp.iter_bytes(), cfg.max_bytes)
                return url, ctype, body, resp.charset_encoding, cut
    raise WebFetchError(f"more than {cfg.max_redirects} redirects")


def _html_text(body: bytes, url: str) -> tuple[str, str]:
    """(title, main text) of an HTML page: trafilatura, else a plain strip of the markup."""
    import trafilatura  # optional dependency, imported only when a page is fetched

    doc = trafilatura.bare_extraction(
        body, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    title = text = ""
    if doc is not None and not isinstance(doc, dict):
        title, text = doc.title or "", doc.text or ""
    if not text.strip():
        text = trafilatura.html2txt(body)
    return title, text


def _pdf_text(body: bytes) -> str:
    from agent.tools import readers

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.pdf"
        path.write_bytes(body)
        try:
            return readers.read_file(path)
        except ToolFailure as exc:
            raise WebFetchError(f"could not read the PDF: {exc}") from None


def _page_text(ctype: str, body: bytes, charset: str | None, url: str) -> tuple[str, str]:
    if ctype in _HTML_TYPES or (not ctype and b"<html" in body[:2048].lower()):
        return _html_text(body, url)
    if ctype == "application/pdf":
        return "", _pdf_text(body)
    if ctype.startswith("text/") or ctype in _TEXT_TYPES or ctype.endswith("+json"):
        return "", body.decode(charset or "utf-8", errors="replace")
    raise WebFetchError(f"unsupported content type {ctype or 'unknown'!r} at {url}")


def web_fetch(url: str, cfg: WebConfig | None = None) -> WebPage:
    """Download `url` and return its main text; raises `ToolDisabled` unless fetch is enabled."""
    cfg = cfg or WebConfig()
    if not cfg.fetch:
        raise _disabled("web_fetch", "`--web-fetch`")
    url = url.strip()
    try:
        final, ctype, body, charset, cut = _download(url, cfg)
    except httpx.TimeoutException:
        raise WebFetchError(f"timed out after {cfg.timeout_s:g}s fetching {url}") from None
    except httpx.HTTPError as exc:
        raise WebFetchError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from None
    title, text = _page_text(ctype, body, charset, final)
    text = text.strip()
    total = len(text)
    truncated = cut or total > cfg.max_chars
    if total > cfg.max_chars:
        text = text[: cfg.max_chars] + f"\n[... truncated: {total - cfg.max_chars} more characters]"
    elif cut:
        text += f"\n[... truncated: download stopped at {cfg.max_bytes} bytes]"
    return WebPage(final, title, ctype, text, total, truncated)
