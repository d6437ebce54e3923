"""Research-agent mode: tools (over MCP), benchmark loaders, judge and a scripted LLM server.

Importing this package imports no mcp: only `agent.tools.server` and
`agent.tools.client` do.
"""

from __future__ import annotations

__all__: list[str] = []
