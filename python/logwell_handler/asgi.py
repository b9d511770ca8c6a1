"""ASGI (FastAPI, Starlette, any ASGI app): request fields on every record of a request.

``app.add_middleware(RequestContextMiddleware)`` in FastAPI or Starlette, or
``RequestContextMiddleware(app)`` around any ASGI app. Each HTTP request runs inside a
:func:`~logwell_handler.log_context` with ``request_id`` (the ``X-Request-ID`` header,
or a new one), ``method`` and ``path``. Concurrent requests never see each other's
fields: each request is its own asyncio task with its own copy of the context.
"""

from __future__ import annotations

from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable

from ._request_id import MAX_REQUEST_ID as MAX_REQUEST_ID
from ._request_id import request_id_from
from .context import log_context

__all__ = ["RequestContextMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestContextMiddleware:
    """Opens a log context per HTTP request and returns its id in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"")
        request_id = request_id_from(given.decode("latin-1"))
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        with log_context(request_id=request_id, method=scope["method"], path=scope["path"]):
            await self.app(scope, receive, send_with_request_id)
