"""Flask: request fields on every record logged while a request is handled.

``init_app(app)`` does for Flask what ``logwell_handler.django.RequestContextMiddleware``
does for Django: from ``before_request`` to ``teardown_request`` every record, Flask's own
"Exception on ..." error included, carries ``request_id`` (the ``X-Request-ID`` header, or
a new one), ``method``, ``path`` and, if you say how to find it, ``user_id``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from flask import Flask, Response, g, request

from ._request_id import MAX_REQUEST_ID as MAX_REQUEST_ID
from ._request_id import request_id_from
from .context import log_context

__all__ = ["init_app"]


def init_app(app: Flask, *, user_id: Optional[Callable[[], Optional[object]]] = None) -> None:
    """Opens a :func:`~logwell_handler.log_context` around each request of ``app``.

    Args:
        app: The Flask application.
        user_id: Called inside each request; its result, when not None, becomes the
            ``user_id`` field (e.g. ``lambda: current_user.get_id()`` with Flask-Login).
    """

    @app.before_request
    def open_log_context() -> None:
        fields: dict[str, Any] = {
            "request_id": request_id_from(request.headers.get("X-Request-ID")),
            "method": request.method,
            "path": request.path,
        }
        if user_id is not None:
            uid = user_id()
            if uid is not None:
                fields["user_id"] = str(uid)
        context = log_context(**fields)
        context.__enter__()
        g._logwell_context = context
        g._logwell_request_id = fields["request_id"]

    @app.after_request
    def send_request_id(response: Response) -> Response:
        request_id = g.get("_logwell_request_id")
        if request_id is not None:
            response.headers["X-Request-ID"] = request_id
        return response

    @app.teardown_request
    def close_log_context(exc: Optional[BaseException]) -> None:
        context = g.pop("_logwell_context", None)
        if context is not None:
            context.__exit__(None, None, None)
