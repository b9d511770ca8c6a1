"""LogwellHandler: a logging.Handler that ships records to Logwell through the Rust core."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import weakref
from typing import Any, Optional, Protocol, Union

from . import _core, _lifecycle
from ._errors import ErrorCode, LogwellError, invalid_config
from ._settings import (
    PER_HANDLER,
    SHARED,
    check_level,
    core_args,
    given_or_environment,
    resolve,
    warn_if_key_in_clear,
)
from .client import AsyncLogwell, BaseLogwell, Logwell
from .context import _fields
from .types import ErrorCallback, FlushCallback, PathSetting, ProtocolName, SourcePath, Stats

# Every attribute a plain LogRecord has, plus those formatters add, plus what structlog's
# ProcessorFormatter.wrap_for_formatter passes along: all else is `extra`.
_RESERVED_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "_logger", "_name"}
)
# Keys structlog adds to an event dict for its own formatter's use.
_STRUCTLOG_META = frozenset({"event", "_record", "_from_structlog"})


class LogwellHandler(logging.Handler):
    """Ships log records to a Logwell server without blocking the caller.

    ``emit()`` turns the record into a JSON entry in Rust and queues it; a native thread
    sends batches to ``{endpoint}/v1/ingest`` (or, with ``protocol="otlp"``,
    ``{endpoint}/v1/logs``) with retries. Nothing is lost silently: see :meth:`stats`.

    Args:
        api_key: Project API key (``lw_`` + 32 characters). Default: ``LOGWELL_API_KEY``.
            With ``protocol="otlp"`` it is optional and may be any bearer token.
        endpoint: Base URL of the server, http or https. Default: ``LOGWELL_ENDPOINT``.
        service: Service name on every entry. Default: ``LOGWELL_SERVICE``, if set.
        level: The handler's level, as for any ``logging.Handler``.
        protocol: ``"logwell"`` (Logwell's simple API) or ``"otlp"`` (OTLP/HTTP JSON, to
            Logwell's OpenTelemetry route or to any collector); see ``docs/otlp.md``.
        headers: Extra HTTP headers on every request, e.g. a collector's own auth. An
            ``Authorization`` here replaces the one made from ``api_key``.
        service_version: OTLP only: the resource's ``service.version``.
        environment: OTLP only: the resource's ``deployment.environment``.
        batch_size: Entries waiting that trigger a send, 1 to 100 (to 10 000 for OTLP;
            a request carries at most 100 or ``batch_size``, whichever is more).
        flush_interval: Seconds between sends of whatever is waiting, 0.1 to 60.
        max_queue_size: Entries held while the server is slow or down, 1 to 1 000 000.
            When full the least important are dropped (debug first, then info, warn,
            error, fatal; the oldest within a level) and counted.
        max_queue_bytes: Bytes held, likewise (default 64 MiB): this is what caps memory.
        max_requests_per_minute: The server's request budget for the key (Logwell's
            ``RATE_LIMIT_INGEST_RPM``); requests are paced to it, 0 for no limit.
            Default: ``LOGWELL_MAX_REQUESTS_PER_MINUTE``, else 600 (Logwell's default).
        max_retries: Retries of a failed request before it waits for the next flush.
        timeout: Seconds one request may take.
        shutdown_timeout: Seconds ``close()`` (and interpreter exit) may spend draining,
            and the default wait of ``flush()``.
        max_message_bytes: Longest message (and any one metadata string) in UTF-8
            bytes; longer ones are cut with a ``…[truncated: N bytes in all]`` marker.
        max_metadata_bytes: Largest encoded metadata; fields past it are left out and
            named in a ``_truncated`` field.
        ca_file: PEM file of CA certificates to trust instead of the system's.
        spool_dir: A directory for the disk spool (default: ``LOGWELL_SPOOL_DIR``, else
            none): what the server cannot take in time (an outage, a full queue, an
            exit) is written there and sent again, by this process or the next one
            started with the same directory. See ``docs/spool.md``.
        max_spool_bytes: Bytes the spool directory may hold for this endpoint and key
            (default 256 MiB); past it, the oldest spooled entries are dropped and
            counted.
        metadata: Fields added to every entry's metadata.
        use_formatter: Whether the handler's formatter (``setFormatter``, basicConfig's
            ``format=``, a dictConfig ``formatter``) makes the entry's message. Off by
            default: the message is the record's own (``getMessage()``), as Logwell
            groups and searches it, and level, logger, time and traceback travel as
            fields of their own. See ``docs/records.md``.
        storm_limit: Records a second one call site (logger, level, file, line and
            message template) may log, after a burst of as many; past it, its records
            are counted, not queued, and one summary per 10 s window goes out in their
            place. 0 (the default, also ``LOGWELL_STORM_LIMIT``) for no limit. See
            ``docs/storms.md``.
        source_path: How ``sourceFile`` is written: ``"relative"`` to the working
            directory at construction, ``"absolute"``, or ``"filename"`` only.
        on_error: Called with a :class:`LogwellError` for each delivery problem, on
            the shipping thread. Exceptions it raises are ignored.
        on_flush: Called with the number of entries the server accepted, per request.
        client: A :class:`Logwell` client to share: records go into its queue, through
            its connection, into its counters, and its settings apply. Only ``level``,
            ``service``, ``metadata`` and ``source_path`` may be given with it.

    Raises:
        LogwellError: ``INVALID_CONFIG`` naming the first bad argument.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        endpoint: Optional[str] = None,
        service: Optional[str] = None,
        *,
        level: Union[int, str, None] = None,
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
        metadata: Optional[dict[str, Any]] = None,
        use_formatter: Optional[bool] = None,
        storm_limit: Optional[int] = None,
        source_path: Optional[SourcePath] = None,
        on_error: Optional[ErrorCallback] = None,
        on_flush: Optional[FlushCallback] = None,
        client: Optional[Union[Logwell, AsyncLogwell]] = None,
    ) -> None:
        level = given_or_environment("level", level)
        check_level(logging.NOTSET if level is None else level)
        metadata = given_or_environment("metadata", metadata)
        given = locals()
        # Made before Handler.__init__ so a bad config leaves no half-made handler in
        # logging's registry for logging.shutdown() to trip over.
        if client is None:
            settings = resolve(given)
            self.on_error = on_error
            self.on_flush = on_flush
            self.service: Optional[str] = settings["service"]
            self.shutdown_timeout = float(settings["shutdown_timeout"])
            storm = given_or_environment("storm_limit", storm_limit)
            self._source: _CoreSource = _OwnCore(self, settings, metadata, storm or 0)
        else:
            _check_only_per_handler_settings(given)
            if storm_limit is not None:
                raise invalid_config(
                    "storm_limit",
                    "is not supported with client= yet: give it to a handler of its own",
                )
            self.on_error = self.on_flush = None
            self.service = service
            self.shutdown_timeout = client._shared.shutdown_timeout
            self._source = _ClientCore(client, service, metadata, source_path)
        self.use_formatter = bool(given_or_environment("use_formatter", use_formatter))
        self._reported: set[Union[ErrorCode, str]] = set()
        self._core = self._source.make()
        warn_if_key_in_clear(self._core)
        super().__init__(logging.NOTSET if level is None else level)
        _lifecycle.register(self)

    def _report_error(self, error: LogwellError) -> None:
        if self.on_error is not None:
            # A user callback must never stop the shipping thread.
            with contextlib.suppress(Exception):
                self.on_error(error)
            return
        # No callback: say it once per kind on stderr, as logging's handleError would. A
        # loss at close is said whatever was said before: it is the last word.
        kind = "at close" if "shutdown deadline" in error.message else error.code
        if kind not in self._reported and logging.raiseExceptions:
            self._reported.add(kind)
            sys.stderr.write(
                f"logwell_handler: {error}; later errors of this kind are only counted in stats()\n"
            )

    def handle(self, record: logging.LogRecord) -> Any:
        # Handler.handle() would take self.lock around emit(); the core is thread-safe,
        # so callers never wait on each other here.
        if self.filters:
            rv = self.filter(record)
            if not rv:
                return rv
            if isinstance(rv, logging.LogRecord):
                record = rv
        self.emit(record)
        return record

    def emit(self, record: logging.LogRecord) -> None:
        try:
            context = _fields.get() or None
            msg = record.msg
            if type(msg) is dict and "event" in msg:
                queued = self._emit_structlog(record, msg, context)
            elif self.use_formatter and self.formatter is not None:
                queued = self._core.emit(record, self.format(record), context)
            else:
                queued = self._core.emit(record, None, context)
            if not queued:
                # The core was made before a fork done in C (uWSGI forks its workers
                # so), which runs no os.register_at_fork hook: this process needs its own.
                self._reset_after_fork()
                self.emit(record)
        except Exception:
            self.handleError(record)

    def _emit_structlog(
        self, record: logging.LogRecord, event: dict[str, Any], context: Optional[dict[str, Any]]
    ) -> bool:
        # structlog.stdlib hands over its event dict as the record's msg: the event is
        # the message and the other keys are metadata, above log_context in precedence.
        fields = {k: v for k, v in event.items() if k not in _STRUCTLOG_META}
        if context:
            fields = {**context, **fields}
        return self._core.emit(record, str(event["event"]), fields)

    # Handler.flush() takes no argument and returns None; ours accepts both calls.
    def flush(self, timeout: Optional[float] = None) -> bool:  # type: ignore[override]
        """Waits until every entry queued before the call is delivered or refused.

        Args:
            timeout: Seconds to wait at most. Default: ``shutdown_timeout``.

        Returns:
            True when all of them got there. False when the time ran out first, or as
            soon as a request failed past its retries (or the server asked for a wait
            longer than the timeout): the entries stay queued for the next try.
        """
        return self._core.flush(self.shutdown_timeout if timeout is None else float(timeout))

    def _flush_until(self, deadline: float) -> bool:
        return self._core.flush(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Delivers what it can within ``shutdown_timeout``, then stops the thread."""
        self._close_until(time.monotonic() + self.shutdown_timeout)

    def _begin_close(self, deadline: float) -> None:
        self._source.begin_close(self._core, deadline)

    def _close_until(self, deadline: float) -> None:
        try:
            self._source.close(self._core, deadline)
            _lifecycle.unregister(self)
        finally:
            super().close()

    def _reset_after_fork(self) -> None:
        self._core = self._source.after_fork(self._core)
        self._reported = set()

    def _shipping_core(self) -> _core.Core:
        return self._core

    def stats(self) -> Stats:
        """Counters; each is described in ``docs/behaviour.md``.

        Every record ends in one of ``sent``, ``dropped_overflow``, ``dropped_at_close``,
        ``failed``, ``rejected_by_server`` or ``spooled``; until then it is ``queued``.
        Also: ``enqueued``, ``dropped_by_level``, ``retries``, ``rate_limited_waits``,
        ``rate_limited_wait_ms``, ``paced_waits``, ``paced_wait_ms``, ``batches``,
        ``bytes_sent``, ``ignored_after_close``, the storm guard's ``storm_suppressed``
        and ``storm_summaries`` (``docs/storms.md``), the spool's ``replayed``, ``replay_failed``,
        ``spool_bytes``, ``dropped_spool_full``, ``spool_corrupt`` and ``spool_errors``
        (``docs/spool.md``), and ``last_error``
        (``{"code", "message"}`` of the latest problem, or None)."""
        return self._core.stats()

    @property
    def queue_size(self) -> int:
        """Entries waiting to be delivered."""
        return self._core.queue_size

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<LogwellHandler {self._core.request_url} service={self.service!r} ({level})>"


def _check_only_per_handler_settings(given: dict[str, Any]) -> None:
    """With ``client=`` the client's settings apply: a handler takes only its level,
    metadata and the per-handler ones."""
    ignored = [name for name in SHARED if name not in PER_HANDLER and given[name] is not None]
    if ignored:
        raise invalid_config(
            ", ".join(ignored), "cannot be given with client=: the client's settings apply"
        )


class _CoreSource(Protocol):
    """Where a handler's core comes from, and what the handler owns of it."""

    def make(self) -> _core.Core: ...
    def begin_close(self, core: _core.Core, deadline: float) -> None: ...
    def close(self, core: _core.Core, deadline: float) -> None: ...
    def after_fork(self, core: _core.Core) -> _core.Core: ...


class _OwnCore:
    """A core of the handler's own: closed with it, and made afresh in a forked child
    (the parent's, with its buffer and thread, stays the parent's: kept, untouched)."""

    def __init__(
        self,
        handler: LogwellHandler,
        settings: dict[str, Any],
        metadata: Optional[dict[str, Any]],
        storm_limit: int,
    ) -> None:
        self._args = {
            **core_args(settings),
            "metadata": metadata,
            "reserved": _RESERVED_ATTRS,
            "storm_limit": storm_limit,
        }
        # The core calls back through a weak reference: the flush thread must not keep
        # a handler alive that the application has dropped.
        ref = weakref.ref(handler)

        def report_error(error: LogwellError) -> None:
            handler = ref()
            if handler is not None:
                handler._report_error(error)

        def report_flush(count: int) -> None:
            handler = ref()
            if handler is not None and handler.on_flush is not None:
                # A user callback must never stop the shipping thread.
                with contextlib.suppress(Exception):
                    handler.on_flush(count)

        self._args["on_error"] = report_error
        self._args["on_flush"] = report_flush if settings["on_flush"] is not None else None

    def make(self) -> _core.Core:
        return _core.Core(**self._args)

    def begin_close(self, core: _core.Core, deadline: float) -> None:
        core.begin_close(max(0.0, deadline - time.monotonic()))

    def close(self, core: _core.Core, deadline: float) -> None:
        core.close(max(0.0, deadline - time.monotonic()))

    def after_fork(self, core: _core.Core) -> _core.Core:
        _lifecycle.keep_forked_away(core)
        return self.make()


class _ClientCore:
    """A core on a client's shipper, with the handler's own service, metadata and source
    path. The queue is the client's: the client closes it, not the handler."""

    def __init__(
        self,
        client: BaseLogwell,
        service: Optional[str],
        metadata: Optional[dict[str, Any]],
        source_path: Optional[str],
    ) -> None:
        self._client = client
        self._args: dict[str, Any] = dict(
            service=service,
            metadata=metadata,
            source_path=source_path,
            cwd=os.getcwd(),
            reserved=_RESERVED_ATTRS,
        )

    def make(self) -> _core.Core:
        return self._client._core_for_handler().derive(**self._args)

    def begin_close(self, core: _core.Core, deadline: float) -> None:
        pass

    def close(self, core: _core.Core, deadline: float) -> None:
        pass

    def after_fork(self, core: _core.Core) -> _core.Core:
        return self.make()
