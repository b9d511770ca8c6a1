"""Logwell and AsyncLogwell: the API of Logwell's official SDKs on the Rust core."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

if TYPE_CHECKING:
    import asyncio

from . import _core, _lifecycle
from ._errors import ErrorCode, LogwellError, invalid_config
from ._settings import SHARED, core_args, given_or_environment, resolve, warn_if_key_in_clear
from .context import _fields
from .types import (
    ErrorCallback,
    FlushCallback,
    IngestResponse,
    LogEntry,
    PathSetting,
    ProtocolName,
    SourcePath,
    Stats,
)

__all__ = ["AsyncLogwell", "BaseLogwell", "Logwell"]

_MAX_LINE = 2**63 - 1  # the core's i64

# The keys of the official SDKs' dict form: every setting of the constructor.
_CONFIG_KEYS = frozenset(SHARED) | {"capture_source_location", "storm_limit"}


class _Shared:
    """What a client and its children share: the core (one buffer, one thread, one set
    of counters), replaced by a fresh one in a forked child. Whether it is closed is the
    core's to say."""

    def __init__(self, core_args: dict[str, Any], shutdown_timeout: float) -> None:
        self.core_args = core_args
        self.shutdown_timeout = shutdown_timeout
        self.core = _core.Core(**core_args)
        warn_if_key_in_clear(self.core)

    # _lifecycle protocol
    def _flush_until(self, deadline: float) -> bool:
        return self.current().flush(max(0.0, deadline - time.monotonic()))

    def _begin_close(self, deadline: float) -> None:
        self.core.begin_close(max(0.0, deadline - time.monotonic()))

    def _close_until(self, deadline: float) -> None:
        self.core.close(max(0.0, deadline - time.monotonic()))

    def _reset_after_fork(self) -> None:
        self.current()

    def _shipping_core(self) -> _core.Core:
        return self.core

    def current(self) -> _core.Core:
        """The core of this process; a forked child gets an empty one of its own."""
        if self.core.forked:
            _lifecycle.keep_forked_away(self.core)
            self.core = _core.Core(**self.core_args)
        return self.core


_Client = TypeVar("_Client", bound="BaseLogwell")


class BaseLogwell:
    """What :class:`Logwell` and :class:`AsyncLogwell` share: the constructor, the
    logging methods, ``child``, ``stats`` and ``queue_size``. (Public, as errors about
    those methods name it.)"""

    _shared: _Shared
    _metadata: Optional[dict[str, Any]]
    _service: Optional[str]
    _capture: bool
    # A storm guard keys calls by their call site, looked up only when there is one.
    _storm_guarded: bool
    _otlp: bool
    # A child's own shutdown (it stops the child, not the shared core).
    _stopped: bool
    _is_root: bool

    def __init__(
        self,
        api_key: Union[str, Mapping[str, Any], None] = None,
        endpoint: Optional[str] = None,
        service: Optional[str] = None,
        *,
        protocol: Optional[ProtocolName] = None,
        headers: Optional[dict[str, str]] = None,
        service_version: Optional[str] = None,
        environment: Optional[str] = None,
        batch_size: Optional[int] = None,
        flush_interval: Optional[float] = None,
        max_queue_size: Optional[int] = None,
        max_queue_bytes: Optional[int] = None,
        max_requests_per_minute: Optional[int] = None,
        max_retries: Optional[int] = None,
        timeout: Optional[float] = None,
        shutdown_timeout: Optional[float] = None,
        max_message_bytes: Optional[int] = None,
        max_metadata_bytes: Optional[int] = None,
        ca_file: Optional[PathSetting] = None,
        spool_dir: Optional[PathSetting] = None,
        max_spool_bytes: Optional[int] = None,
        capture_source_location: Optional[bool] = None,
        storm_limit: Optional[int] = None,
        source_path: Optional[SourcePath] = None,
        on_error: Optional[ErrorCallback] = None,
        on_flush: Optional[FlushCallback] = None,
    ) -> None:
        if isinstance(api_key, Mapping):
            config = dict(api_key)
            unknown = sorted(set(config) - _CONFIG_KEYS)
            if unknown:
                raise invalid_config(
                    "configuration", f"unknown key(s) {unknown}; allowed: {sorted(_CONFIG_KEYS)}"
                )
            if endpoint is not None or service is not None:
                raise invalid_config(
                    "configuration", "pass settings either as a dict or as arguments, not both"
                )
            type(self).__init__(self, **config)
            return
        settings = resolve(locals())
        storm = given_or_environment("storm_limit", storm_limit) or 0
        args = {
            **core_args(settings),
            "storm_limit": storm,
            "reserved": frozenset(),
            "on_error": _guarded(on_error),
            "on_flush": _guarded(on_flush),
        }
        self._shared = _Shared(args, float(settings["shutdown_timeout"]))
        self._otlp = self._shared.core.protocol == "otlp"
        self._metadata = None
        self._service = None  # the core carries the client's own service
        self._capture = bool(
            given_or_environment("capture_source_location", capture_source_location)
        )
        self._storm_guarded = storm > 0
        self._stopped = False
        self._is_root = True
        _lifecycle.register(self._shared)

    def _child_of(
        self: _Client, metadata: Optional[dict[str, Any]], service: Optional[str]
    ) -> _Client:
        child = object.__new__(type(self))
        child._shared = self._shared
        child._metadata = {**(self._metadata or {}), **(metadata or {})} or None
        child._service = service if service is not None else self._service
        child._capture = self._capture
        child._storm_guarded = self._storm_guarded
        child._otlp = self._otlp
        child._stopped = False
        child._is_root = False
        return child

    def child(
        self: _Client, metadata: Optional[dict[str, Any]] = None, *, service: Optional[str] = None
    ) -> _Client:
        """A client that shares this one's queue and adds ``metadata`` to every entry
        (the call's own metadata wins, then the child's, then the parent's).

        Args:
            metadata: Fields for every entry of the child.
            service: The child's service name, instead of the parent's.
        """
        if metadata is not None and not isinstance(metadata, dict):
            raise LogwellError(
                f"invalid log entry: metadata must be a dict, got {type(metadata).__name__}",
                ErrorCode.VALIDATION_ERROR,
            )
        return self._child_of(metadata, service)

    def _log(
        self,
        level: Any,
        message: Any,
        metadata: Any,
        depth: int,
        timestamp: Any = None,
        service: Optional[str] = None,
        source: Optional[tuple[str, int]] = None,
    ) -> None:
        core = self._shared.current()
        if self._stopped:
            # A child's own shutdown; the core counts what comes after its own close.
            core.count_ignored()
            return
        # The call's metadata wins over log_context, which wins over the child's.
        context = _fields.get()
        if self._metadata and context:
            base: Optional[dict[str, Any]] = {**self._metadata, **context}
        else:
            base = self._metadata or context
        if base:
            if metadata is None:
                metadata = dict(base)
            elif isinstance(metadata, dict):
                metadata = {**base, **metadata}
        call_site = None
        if self._capture or self._storm_guarded:
            frame = sys._getframe(depth)
            call_site = (frame.f_code.co_filename, frame.f_lineno)
            if source is None and self._capture:
                source = call_site
        if timestamp is not None and self._otlp:
            timestamp = _epoch_seconds(timestamp)
        core.log_entry(
            level,
            message,
            metadata,
            service=service or self._service,
            timestamp=timestamp,
            source_file=source[0] if source else None,
            line_number=source[1] if source else None,
            call_site=call_site,
        )

    def debug(self, message: str, metadata: Optional[dict[str, Any]] = None) -> None:
        self._log("debug", message, metadata, 2)

    def info(self, message: str, metadata: Optional[dict[str, Any]] = None) -> None:
        self._log("info", message, metadata, 2)

    def warn(self, message: str, metadata: Optional[dict[str, Any]] = None) -> None:
        self._log("warn", message, metadata, 2)

    def error(self, message: str, metadata: Optional[dict[str, Any]] = None) -> None:
        self._log("error", message, metadata, 2)

    def fatal(self, message: str, metadata: Optional[dict[str, Any]] = None) -> None:
        self._log("fatal", message, metadata, 2)

    def log(self, entry: LogEntry) -> None:
        """Logs an entry given as a dict: ``level`` and ``message`` (required),
        ``metadata``, ``service``, ``timestamp`` (ISO 8601), ``sourceFile``, ``lineNumber``."""
        if not isinstance(entry, Mapping):
            raise LogwellError(
                f"invalid log entry: entry must be a dict, got {type(entry).__name__}",
                ErrorCode.VALIDATION_ERROR,
            )
        line = entry.get("lineNumber")
        if line is not None and (type(line) is not int or not 0 <= line <= _MAX_LINE):
            got = line if isinstance(line, int) else type(line).__name__
            raise LogwellError(
                f"invalid log entry: lineNumber must be a non-negative int, got {got}",
                ErrorCode.VALIDATION_ERROR,
            )
        source = None
        if entry.get("sourceFile") is not None:
            source = (str(entry["sourceFile"]), line or 0)
        self._log(
            entry.get("level"),
            entry.get("message"),
            entry.get("metadata"),
            2,
            timestamp=entry.get("timestamp"),
            service=entry.get("service"),
            source=source,
        )

    @property
    def queue_size(self) -> int:
        """Entries waiting to be delivered."""
        return self._shared.current().queue_size

    def stats(self) -> Stats:
        """The same counters as :meth:`LogwellHandler.stats`."""
        return self._shared.current().stats()

    def _flush_blocking(self, timeout: Optional[float]) -> Optional[IngestResponse]:
        core = self._shared.current()
        core.release_summaries()  # a storm's summaries are queued too, if any
        if core.stats()["queued"] == 0:
            return None
        before = core.server_said()
        core.flush(self._shared.shutdown_timeout if timeout is None else float(timeout))
        now = core.server_said(since=before["reasons_given"])
        if now["replies"] == before["replies"]:
            return None  # no request was answered: the official SDKs' None
        # What the server said, summed over the replies that came meanwhile.
        response: IngestResponse = {"accepted": now["accepted"] - before["accepted"]}
        if now["rejected_given"] > before["rejected_given"]:
            response["rejected"] = now["rejected"] - before["rejected"]
        if now["reasons"]:
            response["errors"] = now["reasons"]
        return response

    def _shutdown_blocking(self, timeout: Optional[float]) -> None:
        if not self._is_root:
            # A child shares its parent's queue: it stops itself, not the parent.
            if not self._stopped:
                self._stopped = True
                self._flush_blocking(timeout)
            return
        shared = self._shared
        core = shared.current()
        if core.closed:
            return
        _lifecycle.unregister(shared)
        lost = core.close(shared.shutdown_timeout if timeout is None else timeout)
        if lost:
            raise LogwellError(
                f"{lost} log entries could not be delivered before shutdown",
                ErrorCode.NETWORK_ERROR,
            )

    def _core_for_handler(self) -> _core.Core:
        return self._shared.current()


# Before 3.11, datetime.fromisoformat reads a fraction of 3 or 6 digits only, and no "Z".
# ISO 8601 allows any number of digits: they are made 6 (datetime keeps microseconds, and
# 3.11+ cuts what is past them the same way), so every version reads them alike.
_FRACTION = re.compile(r"(\d\d:\d\d:\d\d)[.,](\d+)")


def _six_digit_fraction(found: re.Match[str]) -> str:
    return f"{found[1]}.{found[2][:6].ljust(6, '0')}"


def _epoch_seconds(timestamp: object) -> float:
    """An ISO 8601 timestamp as seconds since the epoch, for OTLP's ``timeUnixNano``;
    one without a UTC offset is taken as UTC."""
    if isinstance(timestamp, str):
        text = _FRACTION.sub(_six_digit_fraction, timestamp.replace("Z", "+00:00"), count=1)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.timestamp()
    raise LogwellError(
        f"invalid log entry: timestamp must be an ISO 8601 str such as "
        f"'2026-01-01T12:00:00Z', got {timestamp!r}",
        ErrorCode.VALIDATION_ERROR,
    )


def _guarded(callback: Optional[Callable[[Any], None]]) -> Optional[Callable[[Any], None]]:
    """Wraps a user callback so that its exceptions never reach the shipping thread."""
    if callback is None:
        return None

    def call(arg: Any) -> None:
        with contextlib.suppress(Exception):  # the user's bug must not stop delivery
            callback(arg)

    return call


class Logwell(BaseLogwell):
    """A direct client with the API of Logwell's official SDKs.

    Example::

        client = Logwell(api_key="lw_...", endpoint="https://logs.example.com", service="shop")
        client.info("user signed in", {"user_id": "u-9"})
        client.child({"request_id": "r-1"}).warn("slow query", {"ms": 812})
        client.shutdown()

    ``Logwell({"api_key": ..., "endpoint": ..., "service": ...})`` (the official Python
    SDK's form) is accepted too. Arguments are those of :class:`LogwellHandler`, plus
    ``capture_source_location``: fill ``sourceFile``/``lineNumber`` with the caller's line.
    ``storm_limit`` holds each call site to that many entries a second, as for the
    handler (``docs/storms.md``).

    Raises:
        LogwellError: ``INVALID_CONFIG`` for bad settings; ``VALIDATION_ERROR`` from a log
            call with an unknown level, an empty message or metadata that is not a dict.
    """

    def flush(self, timeout: Optional[float] = None) -> Optional[IngestResponse]:
        """Sends what is queued and waits for it (at most ``timeout``, default
        ``shutdown_timeout``, and no longer once a request failed past its retries).
        Returns what the server said, summed over the requests answered meanwhile
        (``accepted``, and ``rejected``/``errors`` when it sent them), or None when
        nothing was queued or no request was answered."""
        return self._flush_blocking(timeout)

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Flushes and stops. Later log calls are ignored and counted.

        Raises:
            LogwellError: ``NETWORK_ERROR`` naming how many entries could not be delivered.
        """
        self._shutdown_blocking(timeout)

    def __enter__(self) -> Logwell:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            self.shutdown()
        except LogwellError:
            if exc_type is None:
                raise  # never hide the exception already on its way out


def _running_loop() -> asyncio.AbstractEventLoop:
    # Imported here, not at the top: once asyncio is imported, every LogRecord made in
    # the process (through any handler) asks it for the current task, which costs about
    # 6 % per record on 3.12+. A loop runs here, so asyncio is loaded already.
    import asyncio

    return asyncio.get_running_loop()


class AsyncLogwell(BaseLogwell):
    """:class:`Logwell` for asyncio: the logging methods never block; ``flush`` and
    ``shutdown`` are awaitables that leave the event loop free while they wait."""

    async def flush(self, timeout: Optional[float] = None) -> Optional[IngestResponse]:
        """As :meth:`Logwell.flush`, awaited on a worker thread."""
        loop = _running_loop()
        return await loop.run_in_executor(None, self._flush_blocking, timeout)

    async def shutdown(self, timeout: Optional[float] = None) -> None:
        """As :meth:`Logwell.shutdown`, awaited on a worker thread."""
        loop = _running_loop()
        await loop.run_in_executor(None, self._shutdown_blocking, timeout)

    async def __aenter__(self) -> AsyncLogwell:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            await self.shutdown()
        except LogwellError:
            if exc_type is None:
                raise
