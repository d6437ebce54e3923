"""Research-agent mode: tools (over MCP), benchmark loaders, judge and a scripted LLM server.

Importing this package imports no mcp: only `recsys.agent.tools.server` and
`recsys.agent.tools.client` do.
"""

from __future__ import annotations

__all__: list[str] = []
