"""Fields that follow a request through the code: ``log_context``.

Backed by a ``ContextVar``, so each thread has its own, each asyncio task starts with a
copy of its creator's, and nothing has to be passed around. ``LogwellHandler`` and the
``Logwell`` client add the fields to the metadata of every entry logged inside.
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any, Callable, Optional, TypeVar

__all__ = ["current_log_context", "log_context"]

# Each value is a fresh dict, never changed once set: readers can hold it without a copy.
# The user is given only read-only views of it.
_fields: ContextVar[dict[str, Any]] = ContextVar("logwell_context", default={})  # noqa: B039

_F = TypeVar("_F", bound=Callable[..., Any])


def current_log_context() -> MappingProxyType[str, Any]:
    """The fields in effect here, as a read-only view: writing to it raises TypeError."""
    return MappingProxyType(_fields.get())


class log_context:
    """Adds fields to the metadata of every record logged inside.

    As a context manager::

        with log_context(request_id="r-1", user_id="u-9"):
            logger.info("paid")

    or as a decorator of a function or a coroutine function. Nesting merges, the inner
    value winning. ``extra=`` on a call wins over the context; the context wins over the
    handler's own ``metadata``. ``with log_context(...) as fields`` gives the merged
    fields as a read-only view, as :func:`current_log_context` does.
    """

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._tokens: list[Token[dict[str, Any]]] = []

    def __enter__(self) -> MappingProxyType[str, Any]:
        merged = {**_fields.get(), **self._fields}
        self._tokens.append(_fields.set(merged))
        return MappingProxyType(merged)

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        _fields.reset(self._tokens.pop())

    def __call__(self, func: _F) -> _F:
        fields = self._fields
        # A fresh context manager per call: calls may overlap in threads and tasks.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with log_context(**fields):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with log_context(**fields):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
