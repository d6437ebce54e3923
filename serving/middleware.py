"""Pure-ASGI middlewares: request body size limit, per-route latency histogram, a header naming
the process that answered (no `BaseHTTPMiddleware`: it costs a task and a body copy per request)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_body
from serving.metrics import ServingMetrics


class BodyLimitMiddleware:
    """413 when Content-Length, or the streamed body, exceeds `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            body = json.dumps(
                error_body("body_too_large", f"request body exceeds {self.max_bytes} bytes")
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # HTTPException: FastAPI re-raises it from body parsing (others become 400)
                    raise HTTPException(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class LatencyMiddleware:
    """Observe `memento_request_latency_seconds{method, route, status}`."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


class TagMiddleware:
    """Add one response header naming the process that answered (a replica, a worker)."""

    def __init__(self, app: ASGIApp, header: str, value: Callable[[], str]) -> None:
        self.app, self.header, self.value = app, header.lower().encode(), value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (self.header, self.value().encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)
