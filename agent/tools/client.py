"""`ToolClient`: a synchronous MCP client (stdio subprocess, streamable HTTP or in-process).

The async mcp `Client` lives on a private event loop in a background thread, so a plain
(synchronous) executor loop can call tools with timeouts:

    with ToolClient.stdio(corpus=Path("corpus.jsonl")) as tools:
        specs = tools.openai_tools()              # for chat.completions(tools=...)
        res = tools.call_tool("search", {"query": "Ed Wood", "k": 3}, timeout_s=10)
        res.text, res.data, res.is_error
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server import MCPServer
from mcp_types import TextContent

from agent.errors import ToolCallError, ToolCallTimeout
from agent.tools.config import ToolServerConfig

__all__ = ["ToolClient", "ToolResult", "ToolSpec"]

T = TypeVar("T")


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    """JSON schema of the arguments."""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions `tools=[...]` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema,
            },
        }


@dataclass(frozen=True)
class ToolResult:
    """Outcome of one tool call."""

    name: str
    text: str
    """All text content joined (what an LLM reads)."""
    data: dict[str, Any] | None
    """Structured content when the tool returned a dict (else None)."""
    is_error: bool
    """True when the tool failed; `text` then holds the error message."""
    duration_s: float


class ToolClient:
    """Synchronous facade over an mcp `Client`; use as a context manager or call `close()`."""

    def __init__(self, server: MCPServer | StdioServerParameters | str, timeout_s: float = 30.0):
        """`server`: an in-process `MCPServer`, stdio launch parameters or an HTTP URL."""
        self._server = server
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._client: Client | None = None
        self._closed = asyncio.Event()
        self._runner: asyncio.Future[None] | None = None
        self._started = False

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def in_process(cls, cfg: ToolServerConfig, timeout_s: float = 30.0) -> ToolClient:
        """A client bound to a server built in this process (no subprocess, no framing)."""
        from agent.tools.server import build_server

        return cls(build_server(cfg), timeout_s=timeout_s)

    @classmethod
    def stdio(
        cls,
        corpus: Path | None = None,
        files_root: Path | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        timeout_s: float = 30.0,
    ) -> ToolClient:
        """A client that launches `python -m agent.tools.server` and talks over stdio."""
        args = ["-m", "agent.tools.server"]
        if corpus is not None:
            args += ["--corpus", str(corpus)]
        if files_root is not None:
            args += ["--files-root", str(files_root)]
        args += list(extra_args)
        return cls(StdioServerParameters(command=python, args=args), timeout_s=timeout_s)

    @classmethod
    def http(cls, url: str, timeout_s: float = 30.0) -> ToolClient:
        """A client for a streamable-HTTP MCP server, e.g. `http://127.0.0.1:8765/mcp`."""
        return cls(url, timeout_s=timeout_s)

    # -- lifecycle ----------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float, what: str = "call") -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout=timeout_s)
        except FutureTimeout:
            fut.cancel()
            raise ToolCallTimeout(f"{what}: no answer within {timeout_s:.1f}s") from None

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        """Enter the mcp client, signal `ready`, and keep it open until `close()`."""
        try:
            async with Client(self._server, read_timeout_seconds=self.timeout_s) as client:
                self._client = client
                ready.set_result(None)
                await self._closed.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise
        finally:
            self._client = None

    def start(self) -> ToolClient:
        """Connect (starts the subprocess for stdio); idempotent."""
        if self._started:
            return self
        self._thread.start()
        self._started = True

        async def open_() -> None:
            ready: asyncio.Future[None] = self._loop.create_future()
            self._runner = asyncio.ensure_future(self._hold(ready))
            await ready

        try:
            self._run(open_(), self.timeout_s)
        except ToolCallTimeout:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ToolCallError(f"could not connect to the tool server: {exc!r}") from exc
        return self

    def close(self) -> None:
        """Disconnect (stops a stdio subprocess) and stop the background loop."""
        if not self._started:
            return
        self._started = False

        async def shut() -> None:
            self._closed.set()
            if self._runner is not None:
                # boundary: shutdown errors of the transport are not ours
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._runner, timeout=10)

        with contextlib.suppress(Exception):  # boundary: best effort on close
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> ToolClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calls --------------------------------------------------------------------------------
    def _require(self) -> Client:
        if self._client is None:
            raise ToolCallError("ToolClient is not connected: use it as a context manager")
        return self._client

    def list_tools(self) -> list[ToolSpec]:
        """Tools the server offers."""
        client = self._require()
        res = self._run(client.list_tools(), self.timeout_s, what="list_tools")
        return [ToolSpec(t.name, t.description or "", dict(t.input_schema)) for t in res.tools]

    def openai_tools(self) -> list[dict[str, Any]]:
        """`list_tools()` in OpenAI chat-completions `tools=` format."""
        return [t.to_openai() for t in self.list_tools()]

    def call_tool(
        self, name: str, args: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> ToolResult:
        """Call `name` with `args`; tool failures come back as `is_error=True`, a call that
        exceeds `timeout_s` raises `ToolCallTimeout`, a broken connection `ToolCallError`."""
        client = self._require()
        limit = self.timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()
        try:
            res = self._run(
                client.call_tool(name, args or {}, read_timeout_seconds=limit),
                limit,
                what=f"tool {name!r}",
            )
        except ToolCallError:
            raise
        except Exception as exc:
            if "timed out" in str(exc).lower() or isinstance(exc, TimeoutError):
                raise ToolCallTimeout(f"tool {name!r}: no answer within {limit:.1f}s") from exc
            raise ToolCallError(f"tool {name!r} call failed: {exc!r}") from exc
        texts = [c.text for c in res.content if isinstance(c, TextContent)]
        data = res.structured_content if isinstance(res.structured_content, dict) else None
        text = "\n".join(texts) if texts else (json.dumps(data) if data is not None else "")
        return ToolResult(name, text, data, bool(res.is_error), time.perf_counter() - start)
