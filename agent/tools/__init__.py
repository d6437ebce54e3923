"""Tools the research agent reaches over MCP: search, document readers, math, sandboxed Python.

The tool functions here are plain Python (no mcp); `server` exposes them over MCP and `client`
calls them.
"""

from __future__ import annotations

__all__: list[str] = []
