"""``flush_after``: deliver an invocation's logs before it returns, for platforms that
freeze a process between invocations (AWS Lambda, Google Cloud Functions, Cloud Run with
CPU only during requests, Azure Functions). A frozen process never reaches its exit
drain, and its shipping thread stops mid-batch: see ``docs/serverless.md``."""

from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, overload

from . import _lifecycle

__all__ = ["FlushAfter", "flush_after"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Seconds a flush may take by default: a few retries' worth, well inside any
#: platform's invocation limit.
DEFAULT_TIMEOUT = 2.0


class FlushAfter:
    """A context manager (``with``/``async with``) and decorator (of a function or a
    coroutine function) that, on the way out, waits until every record logged so far
    through any ``LogwellHandler`` or ``Logwell`` client is delivered, or ``timeout``
    seconds have passed, whichever is first. Exceptions pass through unchanged.

    ``delivered`` is True when the last exit delivered everything in time."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            from ._errors import invalid_config

            raise invalid_config("timeout", f"must be a number of seconds >= 0, got {timeout!r}")
        self.timeout = float(timeout)
        self.delivered = True

    def flush(self) -> bool:
        self.delivered = _lifecycle.flush_all(self.timeout)
        return self.delivered

    async def flush_async(self) -> bool:
        import asyncio  # here: importing it at the top would tax every log call (3.12+)

        loop = asyncio.get_running_loop()
        self.delivered = await loop.run_in_executor(None, _lifecycle.flush_all, self.timeout)
        return self.delivered

    def __enter__(self) -> FlushAfter:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.flush()

    async def __aenter__(self) -> FlushAfter:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.flush_async()

    def __call__(self, func: _F) -> _F:
        timeout = self.timeout
        # A fresh manager per call: invocations may overlap in threads and tasks.
        call = getattr(func, "__call__", None)  # noqa: B004 - an object's async __call__
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with FlushAfter(timeout):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with FlushAfter(timeout):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


@overload
def flush_after(func: _F, /) -> _F: ...
@overload
def flush_after(*, timeout: float = DEFAULT_TIMEOUT) -> FlushAfter: ...
def flush_after(func: Optional[_F] = None, /, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Delivers what was logged before returning; for serverless functions::

        @flush_after                     # or @flush_after(timeout=1.0)
        def handler(event, context): ...

        async with flush_after(timeout=1.0):
            ...

    Args:
        timeout: Seconds the flush may take at most (default 2).
    """
    manager = FlushAfter(timeout)
    return manager if func is None else manager(func)
