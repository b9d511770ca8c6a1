"""The types of the public API, named as Logwell's official Python SDK names them, so that
typed code moves over with an import swap (``from logwell_handler.types import ...``).

They cost nothing at run time: TypedDicts are plain dicts, and Literals plain strs."""

from __future__ import annotations

import os
from typing import Any, Callable, Literal, Optional, TypedDict, Union

from ._errors import ErrorCodeName, LogwellError

#: A level of the client's API (``Logwell.log({"level": ...})``) and of the wire.
LogLevel = Literal["debug", "info", "warn", "error", "fatal"]
#: The wire format: Logwell's simple API or OTLP/HTTP JSON.
ProtocolName = Literal["logwell", "otlp"]
#: How ``sourceFile`` is written.
SourcePath = Literal["relative", "absolute", "filename"]
#: A path setting: ``ca_file``, ``spool_dir``.
PathSetting = Union[str, "os.PathLike[str]"]
__all__ = [
    "DroppedByLevel",
    "ErrorCallback",
    "ErrorCodeName",
    "FlushCallback",
    "IngestResponse",
    "LastError",
    "LogEntry",
    "LogLevel",
    "LogwellConfig",
    "PathSetting",
    "ProtocolName",
    "SourcePath",
    "Stats",
]

ErrorCallback = Callable[[LogwellError], None]
FlushCallback = Callable[[int], None]


class _LogEntryRequired(TypedDict):
    level: LogLevel
    message: str


class LogEntry(_LogEntryRequired, total=False):
    """An entry for ``Logwell.log()``: ``level`` and ``message`` are required."""

    timestamp: str
    service: str
    metadata: dict[str, Any]
    sourceFile: str
    lineNumber: int


class LogwellConfig(TypedDict, total=False):
    """The settings of :class:`~logwell_handler.Logwell` as one dict (the official
    SDK's form: ``Logwell({"api_key": ..., "endpoint": ...})``)."""

    api_key: str
    endpoint: str
    service: str
    protocol: ProtocolName
    headers: dict[str, str]
    service_version: str
    environment: str
    batch_size: int
    flush_interval: float
    max_queue_size: int
    max_queue_bytes: int
    max_requests_per_minute: int
    max_retries: int
    timeout: float
    shutdown_timeout: float
    max_message_bytes: int
    max_metadata_bytes: int
    ca_file: PathSetting
    spool_dir: PathSetting
    max_spool_bytes: int
    capture_source_location: bool
    storm_limit: int
    source_path: SourcePath
    on_error: ErrorCallback
    on_flush: FlushCallback


class _IngestResponseRequired(TypedDict):
    accepted: int


class IngestResponse(_IngestResponseRequired, total=False):
    """What a flush delivered, summed over its requests as the server answered them:
    ``accepted``, and ``rejected``/``errors`` when the server refused some entries."""

    rejected: int
    errors: list[str]


class LastError(TypedDict):
    """The latest delivery problem, as ``stats()["last_error"]`` holds it."""

    code: ErrorCodeName
    message: str


class DroppedByLevel(TypedDict):
    """``dropped_overflow`` by level: a full queue sheds debug first, then info, warn,
    error and fatal."""

    debug: int
    info: int
    warn: int
    error: int
    fatal: int


class Stats(TypedDict):
    """The counters of ``stats()``; each is described in ``docs/behaviour.md``."""

    enqueued: int
    queued: int
    sent: int
    dropped_overflow: int
    dropped_by_level: DroppedByLevel
    dropped_at_close: int
    failed: int
    rejected_by_server: int
    spooled: int
    replayed: int
    replay_failed: int
    spool_bytes: int
    dropped_spool_full: int
    spool_corrupt: int
    spool_errors: int
    retries: int
    rate_limited_waits: int
    rate_limited_wait_ms: int
    paced_waits: int
    paced_wait_ms: int
    batches: int
    bytes_sent: int
    ignored_after_close: int
    storm_suppressed: int
    storm_summaries: int
    last_error: Optional[LastError]
