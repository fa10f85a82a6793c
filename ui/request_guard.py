"""The HTTP service's guard (pure ASGI middleware): what is refused before a request reaches the model.

In order, for every HTTP request:

1. a URL (path and query) longer than ``max_url_bytes`` is answered 414;
2. with an ``api_key``, a request to anything but the open paths (``/health``, the docs) must
   carry it as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY`` (compared in constant time),
   else 401;
3. a body longer than ``max_body_bytes`` (by ``Content-Length``, or counted as it streams in) is
   answered 413 without being parsed;
4. admission control: at most ``max_in_flight`` model requests are handled at once; one more is
   answered 503 with ``Retry-After`` at once, so under overload the service answers quickly the
   requests it cannot take instead of queueing work for clients that have gone away. The open
   paths are never counted or refused: ``/health`` answers under any load.

uvicorn's own ``limit_concurrency`` would 503 ``/health`` too, which is why admission is here.
Every refusal is a JSON body ``{"detail": one line}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
RETRY_AFTER_SECONDS = 1


class RequestGuard:
    """Wrap ``app``: URL and body limits, the API key, and a bound on model requests in flight."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        max_body_bytes: int,
        max_url_bytes: int,
        api_key: str | None = None,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes
        self._key = None if api_key is None else api_key.encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if url_bytes > self.max_url_bytes:
            await _refuse(send, 414, f"URL of {url_bytes} bytes; at most {self.max_url_bytes} are accepted")
            return
        path = scope["path"]
        is_open = path in OPEN_PATHS
        if self._key is not None and not is_open and not self._authorised(scope):
            await _refuse(send, 401, "missing or wrong API key: send X-API-Key: KEY or Authorization: Bearer KEY")
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _refuse(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        if is_open:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await _refuse(
                send,
                503,
                "the service is at capacity; retry shortly",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )
            return
        self.in_flight += 1
        try:
            body = await self._read_body(receive)
            if body is None:
                await _refuse(send, 413, f"request body over {self.max_body_bytes} bytes")
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    def _authorised(self, scope: Scope) -> bool:
        given = _header(scope, b"x-api-key")
        if given is None:
            bearer = _header(scope, b"authorization") or ""
            given = bearer[7:] if bearer.lower().startswith("bearer ") else None
        return given is not None and hmac.compare_digest(given.encode(), self._key)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None once it passes the limit (read no further)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _refuse(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
