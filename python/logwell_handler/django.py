"""Django: request fields on every record logged while a request is handled.

Add ``"logwell_handler.django.RequestContextMiddleware"`` to ``MIDDLEWARE`` after
``AuthenticationMiddleware``. Each record logged during the request, Django's own
``django.request`` errors included, then carries ``request_id`` (the ``X-Request-ID``
header, or a new one), ``method``, ``path`` and, for a signed-in user, ``user_id``.
The response carries the request id back in ``X-Request-ID``.
"""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from ._request_id import MAX_REQUEST_ID as MAX_REQUEST_ID
from ._request_id import request_id_from
from .context import log_context

__all__ = ["RequestContextMiddleware", "request_fields"]


def request_fields(request: Any) -> dict[str, Any]:
    """The context fields of a Django ``HttpRequest``."""
    fields: dict[str, Any] = {
        "request_id": request_id_from(request.META.get("HTTP_X_REQUEST_ID")),
        "method": request.method,
        "path": request.path,
    }
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        fields["user_id"] = str(user.pk)
    return fields


class RequestContextMiddleware:
    """Opens a :func:`~logwell_handler.log_context` around each request (sync or async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        with log_context(**request_fields(request)) as fields:
            response = self.get_response(request)
        response["X-Request-ID"] = fields["request_id"]
        return response

    async def _acall(self, request: Any) -> Any:
        with log_context(**request_fields(request)) as fields:
            response = await self.get_response(request)
        response["X-Request-ID"] = fields["request_id"]
        return response
