"""Web search and crawl: optional tools, off by default; this build ships only a disabled stub."""

from __future__ import annotations

from agent.errors import ToolDisabled

__all__ = ["web_fetch", "web_search"]

_MSG = (
    "{name} is disabled: this deployment runs offline (enable_web=False). Use `search` over the "
    "local document collection instead."
)


def web_search(query: str, k: int = 5, enabled: bool = False) -> list[dict[str, str]]:
    """Web search (not implemented in this build): always raises `ToolDisabled`."""
    if not enabled:
        raise ToolDisabled(_MSG.format(name="web_search"))
    raise ToolDisabled("web_search has no network backend in this build")


def web_fetch(url: str, enabled: bool = False) -> str:
    """Fetch a web page (not implemented in this build): always raises `ToolDisabled`."""
    if not enabled:
        raise ToolDisabled(_MSG.format(name="web_fetch"))
    raise ToolDisabled("web_fetch has no network backend in this build")
