"""The receiver itself: :class:`LogwellReceiver`, which checks each request in the order
Logwell's server does and keeps what it accepted, and the HTTP server it runs on."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._faults import _FAULT_NAMES, Fault, _Body
from ._logwell import _KEY, MAX_BATCH, _has_nul, validate_entry
from ._otlp import OtlpValidationError, normalize_otlp
from ._rate_limit import _TokenBucket
from ._sveltekit import _CSRF_MESSAGE, _ERROR_PAGE, _FORM_MEDIA_TYPES, _parse_json, _prefers_json

if TYPE_CHECKING:
    from ..handler import LogwellHandler

# What the receiver answers a request: status, body, extra headers.
_Reply = tuple[int, _Body, dict[str, str]]


@dataclass
class ReceivedRequest:
    """What the receiver saw of one request and what it answered."""

    status: int
    entries: int
    accepted: int
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class LogwellReceiver:
    """A Logwell-compatible ingest endpoint on loopback. Thread-safe."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        host: str = "127.0.0.1",
        *,
        port: int = 0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.api_key = api_key or "lw_" + secrets.token_hex(16)
        self.entries: list[dict[str, Any]] = []
        #: OTLP records accepted on /v1/logs, as ``normalize_otlp`` gives them.
        self.log_records: list[dict[str, Any]] = []
        #: Raw bodies of the accepted /v1/logs requests, as parsed JSON.
        self.otlp_payloads: list[dict[str, Any]] = []
        #: How /v1/logs answers: "logwell" (``{"accepted", ...}``, as Logwell's server) or
        #: "collector" (``{"partialSuccess": ...}``, as an OpenTelemetry Collector).
        self.otlp_reply = "logwell"
        #: An OTLP record for which this returns true is refused on its own.
        self.reject_record_if: Optional[Callable[[dict[str, Any]], bool]] = None
        self.requests: list[ReceivedRequest] = []
        #: Most entries (or OTLP records) a request may hold; None: any, as a collector.
        self.max_batch: Optional[int] = MAX_BATCH
        #: None: Logwell's check (``Authorization: Bearer <api_key>``). A str: the exact
        #: ``Authorization`` header required instead, "" for none (a collector's auth).
        self.authorization: Optional[str] = None
        #: Seconds every reply waits before it is sent (a slow server).
        self.delay = 0.0
        #: Requests bigger than this many bytes are answered 413, as by a proxy.
        self.max_body_bytes: Optional[int] = None
        #: A batch holding an entry for which this returns true is refused whole (400).
        self.refuse_batch_if: Optional[Callable[[dict[str, Any]], bool]] = None
        #: A batch holding an entry (or OTLP record) for which this returns true fails
        #: whole with 500, as the server's transaction does on what its database refuses.
        self.fail_batch_if: Optional[Callable[[dict[str, Any]], bool]] = None
        #: Seconds the 429 replies of the rate limit ask the client to wait: the server
        #: always says 60, whatever its bucket holds.
        self.rate_limit_retry_after: float = 60
        self._bucket: Optional[_TokenBucket] = None
        self._faults: deque[Fault] = deque()
        self._cond = threading.Condition()
        # A given port: the server coming back where a client saw it go down.
        self._server = _QuietServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._scheme = "http"
        if ssl_context is not None:
            # The handshake happens in the request's thread, not in accept().
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._scheme = "https"
        self._thread: Optional[threading.Thread] = None
        self._handlers: list[LogwellHandler] = []

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def rate_limit_per_minute(self) -> Optional[float]:
        """The server's rate limit (its ``RATE_LIMIT_INGEST_RPM``, 600 by default): one
        token bucket for the key, shared by /v1/ingest and /v1/logs, holding this many
        requests, full when set, refilled continuously at this many a minute. A request
        finding it empty is answered 429 with ``Retry-After: rate_limit_retry_after``.
        None (the receiver's default): no limit."""
        return self._bucket.per_minute if self._bucket else None

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, per_minute: Optional[float]) -> None:
        if per_minute is not None and not per_minute > 0:
            raise ValueError(f"rate_limit_per_minute must be > 0 or None, got {per_minute!r}")
        with self._cond:
            self._bucket = _TokenBucket(per_minute) if per_minute is not None else None

    def start(self) -> LogwellReceiver:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="logwell-receiver",
                daemon=True,
            )
            self._thread.start()
        return self

    def handler(
        self, logger: Union[logging.Logger, str, None] = None, **settings: Any
    ) -> LogwellHandler:
        """A ``LogwellHandler`` shipping to this receiver, ready for a test: it sends
        every 0.1 s, :meth:`wait_for` flushes it first, and :meth:`stop` removes it from
        every logger it was added to and closes it, whatever the test did. Given a
        ``logger`` (or a logger's name), it is added to it. ``settings`` are the
        handler's own and win over those."""
        from ..handler import LogwellHandler

        given: dict[str, Any] = {
            "api_key": self.api_key,
            "endpoint": self.endpoint,
            "flush_interval": 0.1,
            # Not the application's spool (LOGWELL_SPOOL_DIR): a test's entries are its own.
            "spool_dir": "",
            **settings,
        }
        made = LogwellHandler(**given)
        self._handlers.append(made)
        if logger is not None:
            (logging.getLogger(logger) if isinstance(logger, str) else logger).addHandler(made)
        return made

    def _release_handlers(self) -> None:
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for made in self._handlers:
            for logger in loggers:
                if isinstance(logger, logging.Logger) and made in logger.handlers:
                    logger.removeHandler(made)
            made.close()
        self._handlers.clear()

    def stop(self) -> None:
        # The handlers go first, while the server can still take what they hold.
        self._release_handlers()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LogwellReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        retry_after: Optional[float] = None,
        body: Optional[_Body] = None,
        delay: float = 0.0,
    ) -> None:
        """Makes the next ``count`` requests answer ``status`` without storing anything."""
        with self._cond:
            for _ in range(count):
                self._faults.append(Fault(status, body, retry_after, delay))

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Waits until at least ``count`` entries (of either route) were accepted; returns
        whether they were. Handlers made by :meth:`handler` are flushed first."""
        deadline = time.monotonic() + timeout
        handlers = list(self._handlers)
        for made in handlers:
            made.flush(timeout=0)  # each asked at once, then waited for
        for made in handlers:
            made.flush(timeout=max(0.0, deadline - time.monotonic()))
        with self._cond:
            while len(self.entries) + len(self.log_records) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def messages(self) -> list[str]:
        with self._cond:
            return [e["message"] for e in self.entries + self.log_records]

    def statuses(self) -> list[int]:
        with self._cond:
            return [r.status for r in self.requests]

    def clear(self) -> None:
        with self._cond:
            self.entries.clear()
            self.log_records.clear()
            self.otlp_payloads.clear()
            self.requests.clear()
            self._faults.clear()

    # -- the server's logic ------------------------------------------------------------

    def _next_fault(self) -> Optional[Fault]:
        with self._cond:
            return self._faults.popleft() if self._faults else None

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Returns (status, reply body, extra headers); checks in the server's order."""
        fault = self._next_fault()
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            fault_reply = fault.body or {"error": _FAULT_NAMES.get(fault.status, "injected_fault")}
            self._record(fault.status, 0, 0, headers)
            return fault.status, fault_reply, extra

        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type in _FORM_MEDIA_TYPES and headers.get("origin") != self.endpoint:
            # The framework's cross-site check, before any route: plain text unless the
            # client accepts exactly application/json.
            self._record(403, 0, 0, headers)
            if headers.get("accept") == "application/json":
                return 403, {"message": _CSRF_MESSAGE}, {}
            return 403, _CSRF_MESSAGE, {}
        if media_type != "application/json":
            return self._refuse(
                415, "unsupported_media_type", "Content-Type must be application/json", headers
            )
        auth = headers.get("authorization", "")
        if self.authorization is not None:
            if auth != self.authorization:
                return self._refuse(401, "unauthorized", "Wrong Authorization header", headers)
        else:
            key = auth[7:] if auth.startswith("Bearer ") else ""
            if not _KEY.match(key):
                return self._refuse(401, "unauthorized", "Missing or malformed API key", headers)
            if key != self.api_key:
                return self._refuse(401, "unauthorized", "Invalid API key", headers)
        with self._cond:
            limited = self._bucket is not None and not self._bucket.take()
        if limited:
            # Before the body is read: a 429 costs the server no parsing.
            self._record(429, 0, 0, headers)
            wait = f"{self.rate_limit_retry_after:g}"
            refusal: dict[str, Any] = {"error": "rate_limited"}
            if path == "/v1/ingest":  # /v1/logs says no more than that
                refusal["message"] = f"Rate limit exceeded. Retry in {wait} seconds."
            return 429, refusal, {"Retry-After": wait}
        try:
            payload = _parse_json(body)
        except ValueError:
            return self._refuse(400, "invalid_json", "Request body must be valid JSON", headers)
        if path == "/v1/logs":
            return self._handle_otlp(payload, headers)
        entries = payload if isinstance(payload, list) else [payload]
        if not entries:
            return self._refuse(400, "validation_error", "Empty batch", headers)
        if self.max_batch is not None and len(entries) > self.max_batch:
            return self._refuse(
                400, "batch_too_large", f"At most {self.max_batch} entries", headers
            )
        refuse = self.refuse_batch_if
        if refuse is not None:
            for i, entry in enumerate(entries):
                if isinstance(entry, dict) and refuse(entry):
                    return self._refuse(
                        400, "validation_error", f"Entry at index {i} is refused", headers
                    )
        accepted, errors = [], []
        for i, entry in enumerate(entries):
            problem = validate_entry(entry)
            if problem is None:
                accepted.append(entry)
            else:
                errors.append(f"Entry at index {i}: {problem}")
        # The real server stores a batch in one transaction, which fails as a whole on a
        # fractional line number or on a NUL in any text it stores.
        fail = self.fail_batch_if
        if any(
            isinstance(e.get("lineNumber"), float)
            or any(_has_nul(e.get(name)) for name in ("message", "service", "sourceFile"))
            or _has_nul(e.get("metadata"))
            or (fail is not None and fail(e))
            for e in accepted
        ):
            return self._store_failure(headers)
        with self._cond:
            self.entries.extend(accepted)
            self._cond.notify_all()
        self._record(200, len(entries), len(accepted), headers)
        reply: dict[str, Any] = {"accepted": len(accepted)}
        if errors:
            reply.update(rejected=len(errors), errors=errors)
        return 200, reply, {}

    def _handle_otlp(self, payload: Any, headers: dict[str, str]) -> _Reply:
        try:
            records, errors = normalize_otlp(payload)
        except OtlpValidationError as e:
            return self._refuse(400, "validation_error", str(e), headers)
        # Counted after normalisation, as the server counts: records, not resources.
        if self.max_batch is not None and len(records) > self.max_batch:
            return self._refuse(
                400,
                "batch_too_large",
                f"Batch exceeds maximum limit of {self.max_batch} logs. "
                f"Received {len(records)} logs.",
                headers,
            )
        refuse = self.refuse_batch_if
        if refuse is not None and any(refuse(r) for r in records):
            return self._refuse(400, "validation_error", "A log record is refused", headers)
        reject = self.reject_record_if
        if reject is not None:
            kept = [r for r in records if not reject(r)]
            errors += ["Log record rejected: refused by the test"] * (len(records) - len(kept))
            records = kept
        # One transaction, as on /v1/ingest: a NUL in any text of a record fails them all.
        stored_text = ("message", "body", "attributes", "resource", "scope", "severityText")
        fail = self.fail_batch_if
        if any(_has_nul(r.get(name)) for r in records for name in stored_text) or (
            fail is not None and any(fail(r) for r in records)
        ):
            return self._store_failure(headers)
        with self._cond:
            self.log_records.extend(records)
            self.otlp_payloads.append(payload)
            self._cond.notify_all()
        self._record(200, len(records) + len(errors), len(records), headers)
        reply: dict[str, Any]
        if self.otlp_reply == "collector":
            reply = {}
            if errors:
                reply["partialSuccess"] = {
                    "rejectedLogRecords": str(len(errors)),
                    "errorMessage": "; ".join(errors),
                }
        else:
            reply = {"accepted": len(records)}
            if errors:
                reply.update(rejected=len(errors), errors=errors)
        return 200, reply, {}

    def _store_failure(self, headers: dict[str, str]) -> _Reply:
        """The server's reply when storing a batch fails: the framework's 500, as JSON
        with an error id if the client accepts JSON (``*/*`` does), else an HTML page."""
        self._record(500, 0, 0, headers)
        if _prefers_json(headers.get("accept")):
            return 500, {"id": secrets.token_urlsafe(9), "message": "Internal server error"}, {}
        return 500, _ERROR_PAGE, {"Content-Type": "text/html; charset=utf-8"}

    def _refuse(self, status: int, error: str, message: str, headers: dict[str, str]) -> _Reply:
        self._record(status, 0, 0, headers)
        return status, {"error": error, "message": message}, {}

    def _record(self, status: int, entries: int, accepted: int, headers: dict[str, str]) -> None:
        safe = {k: v for k, v in headers.items() if k != "authorization"}
        with self._cond:
            self.requests.append(ReceivedRequest(status, entries, accepted, safe))
            self._cond.notify_all()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up on a request (a close deadline, a timeout) is normal
        # here; anything else is a receiver bug and is printed as usual.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _make_handler(receiver: LogwellReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real server

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm holds
            # the second until the client's delayed ACK, 40 ms per request.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            limit = receiver.max_body_bytes
            body = self.rfile.read(length)
            if limit is not None and length > limit:
                receiver._record(413, 0, 0, {})
                self._reply(413, {"error": "payload_too_large"}, {})
                return
            path = self.path.rstrip("/")
            if path not in ("/v1/ingest", "/v1/logs"):
                self._reply(404, {"error": "not_found"}, {})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reply, extra = receiver._handle(path, headers, body)
            if receiver.delay:
                time.sleep(receiver.delay)
            self._reply(status, reply, extra)

        def _reply(self, status: int, reply: _Body, extra: dict[str, str]) -> None:
            if isinstance(reply, str):
                data = reply.encode()
                content_type = extra.pop("Content-Type", "text/plain; charset=utf-8")
            else:
                data = json.dumps(reply).encode()
                content_type = "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a test's output is not the place for access logs

    return Handler
