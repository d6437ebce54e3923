"""A scripted OpenAI-compatible chat-completions server on loopback, for deterministic tests.

Each request is answered by, in order: the first `Rule` whose `contains` text occurs in the
chosen message(s); else the next reply of the replay queue; else `default`. Replies can carry
tool calls (OpenAI `tool_calls` format). Non-streaming only. Uses only the standard library.

    with ScriptedLLMServer(Script(replies=(ScriptedReply(content="Paris"),))) as srv:
        OpenAI(base_url=srv.base_url, api_key="x").chat.completions.create(...)

As a process: `python -m agent.scripted_server --script script.json --port 0` prints
`READY http://127.0.0.1:PORT/v1` on stdout (script JSON: see `Script.from_json`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "Rule",
    "Script",
    "ScriptedLLMServer",
    "ScriptedReply",
    "ScriptedToolCall",
    "message_text",
    "user_field",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call the scripted assistant makes."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptedReply:
    """One assistant message: text, tool calls, or both."""

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ScriptedReply:
        calls = tuple(
            ScriptedToolCall(c["name"], dict(c.get("arguments", {})))
            for c in obj.get("tool_calls", [])
        )
        return cls(obj.get("content"), calls)


@dataclass(frozen=True)
class Rule:
    """Answer `reply` when `contains` occurs in the selected messages' text."""

    contains: str
    reply: ScriptedReply
    where: Literal["last", "any", "system"] = "last"
    """`last`: the last message; `any`: any message; `system`: the system prompt(s)."""
    max_uses: int | None = None
    """Stop matching after this many uses (None = unlimited)."""


@dataclass(frozen=True)
class Script:
    """Rules, then a replay queue, then a default reply."""

    rules: tuple[Rule, ...] = ()
    replies: tuple[ScriptedReply, ...] = ()
    default: ScriptedReply = ScriptedReply(content="")
    """Used when no rule matches and the queue is empty ('' = a silent reply)."""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Script:
        """`{"rules": [{"contains", "reply", "where"?, "max_uses"?}], "replies": [...],
        "default": {...}}`; a reply is `{"content"?, "tool_calls"?: [{"name", "arguments"}]}`."""
        rules = tuple(
            Rule(
                r["contains"],
                ScriptedReply.from_json(r["reply"]),
                r.get("where", "last"),
                r.get("max_uses"),
            )
            for r in obj.get("rules", [])
        )
        replies = tuple(ScriptedReply.from_json(r) for r in obj.get("replies", []))
        default = ScriptedReply.from_json(obj["default"]) if "default" in obj else ScriptedReply("")
        return cls(rules, replies, default)


def message_text(msg: Mapping[str, Any]) -> str:
    """The text of a chat message (plain content or the text of its content parts)."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def user_field(messages: Sequence[Mapping[str, Any]], name: str) -> str:
    """The value of the first `NAME: value` line in the user messages ('' when none)."""
    for m in messages:
        if m.get("role") == "user":
            found = re.search(rf"^{re.escape(name)}: (.*)$", message_text(m), re.MULTILINE)
            if found:
                return found.group(1).strip()
    return ""


class ScriptedLLMServer:
    """The server; `start()` runs it in a daemon thread, `stop()` shuts it down."""

    def __init__(self, script: Script, host: str = "127.0.0.1", port: int = 0) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order (for assertions)."""
        self._queue: deque[ScriptedReply] = deque(script.replies)
        self._uses = [0] * len(script.rules)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """OpenAI `base_url`, e.g. `http://127.0.0.1:PORT/v1`."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ScriptedLLMServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (safe to call when never started)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- answering ----------------------------------------------------------------------------
    def choose_reply(self, messages: Sequence[Mapping[str, Any]]) -> ScriptedReply:
        """The reply for a conversation (rules, then queue, then default); thread-safe."""
        with self._lock:
            for i, rule in enumerate(self.script.rules):
                if rule.max_uses is not None and self._uses[i] >= rule.max_uses:
                    continue
                if rule.where == "last":
                    selected = list(messages[-1:])
                elif rule.where == "system":
                    selected = [m for m in messages if m.get("role") == "system"]
                else:
                    selected = list(messages)
                if any(rule.contains in message_text(m) for m in selected):
                    self._uses[i] += 1
                    return rule.reply
            if self._queue:
                return self._queue.popleft()
            return self.script.default

    def completion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The chat.completion JSON for a request body."""
        messages = body.get("messages") or []
        reply = self.choose_reply(messages)
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{j}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
                }
                for j, c in enumerate(reply.tool_calls)
            ]
        prompt_tokens = sum(len(message_text(m).split()) for m in messages)
        completion_tokens = len((reply.content or "").split()) + 8 * len(reply.tool_calls)
        return {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "scripted")),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("scripted server: " + format, *args)

            def _send(self, status: int, obj: Mapping[str, Any]) -> None:
                data = json.dumps(obj).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error": {"message": message, "type": "invalid_request"}})

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted"}]})
                else:
                    self._error(404, f"unknown path {self.path}")

            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, f"unknown path {self.path}")
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    body = json.loads(self.rfile.read(length) or b"{}")
                except (ValueError, json.JSONDecodeError) as exc:
                    self._error(400, f"bad JSON body: {exc}")
                    return
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    self._error(400, "body must be an object with a 'messages' list")
                    return
                if body.get("stream"):
                    self._error(400, "the scripted server does not stream (stream=false)")
                    return
                with owner._lock:
                    owner.requests.append(body)
                self._send(200, owner.completion(body))

        return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve a script file until interrupted; prints `READY <base_url>` once listening."""
    p = argparse.ArgumentParser(description="scripted OpenAI-compatible server (loopback)")
    p.add_argument("--script", type=Path, required=True, help="script JSON (see Script.from_json)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    args = p.parse_args(argv)
    script = Script.from_json(json.loads(args.script.read_text(encoding="utf-8")))
    server = ScriptedLLMServer(script, args.host, args.port)
    import sys

    sys.stdout.write(f"READY {server.base_url}\n")
    sys.stdout.flush()
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
