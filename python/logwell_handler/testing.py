"""A local Logwell-compatible receiver for tests and demos.

It listens on 127.0.0.1 (a free port), checks each request the way Logwell's server does
(media type, API key, JSON, batch size, each entry), keeps what it accepted, and can be
told to misbehave. It serves both of Logwell's routes: ``/v1/ingest`` (the simple API,
kept in ``entries``) and ``/v1/logs`` (OTLP/HTTP JSON, normalised as the server does and
kept in ``log_records``)::

    from logwell_handler.testing import LogwellReceiver

    with LogwellReceiver() as receiver:
        handler = LogwellHandler(api_key=receiver.api_key, endpoint=receiver.endpoint)
        ...
        receiver.fail_next(2, status=500)    # the next two requests answer 500
        receiver.rate_limit = 20             # 20 requests a second, then 429
        receiver.max_body_bytes = 65536      # larger bodies get 413
        receiver.refuse_batch_if = lambda e: "poison" in e["message"]   # whole batch 400
        receiver.wait_for(10)                # until 10 entries were accepted
        receiver.entries                     # the accepted entries, as dicts
        receiver.log_records                 # the accepted OTLP records, normalised
        receiver.otlp_reply = "collector"    # answer /v1/logs as a collector does

``LogwellReceiver(ssl_context=ctx)`` serves https with that context's certificate.

With pytest, the ``logwell_receiver`` fixture gives a started receiver.
"""

from __future__ import annotations

import json
import re
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
from typing import Any, Callable, Optional

__all__ = ["Fault", "LogwellReceiver", "ReceivedRequest", "normalize_otlp"]

MAX_BATCH = 100
LEVELS = frozenset({"debug", "info", "warn", "error", "fatal"})
_KEY = re.compile(r"^lw_[A-Za-z0-9_-]{32}$")


@dataclass
class Fault:
    """One injected misbehaviour, used for the next request that reaches the receiver."""

    status: int = 500
    body: Optional[dict[str, Any]] = None
    retry_after: Optional[float] = None
    delay: float = 0.0


@dataclass
class ReceivedRequest:
    """What the receiver saw of one request and what it answered."""

    status: int
    entries: int
    accepted: int
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def validate_entry(entry: Any) -> Optional[str]:
    """The server's per-entry check: None when valid, else the reason."""
    if not isinstance(entry, dict):
        return "must be an object"
    if entry.get("level") not in LEVELS:
        return f"level must be one of {sorted(LEVELS)}, got {entry.get('level')!r}"
    message = entry.get("message")
    if not isinstance(message, str) or not message.strip():
        return "message is required and must be a non-empty string"
    for name in ("timestamp", "service", "sourceFile"):
        if name in entry and not isinstance(entry[name], str):
            return f"{name} must be a string"
    if "metadata" in entry and not isinstance(entry["metadata"], dict):
        return "metadata must be an object"
    if "lineNumber" in entry:
        line = entry["lineNumber"]
        if isinstance(line, bool) or not isinstance(line, (int, float)) or line <= 0:
            return "lineNumber must be a positive integer"
    return None


class OtlpValidationError(ValueError):
    """The request as a whole is not an OTLP export the server takes (400)."""


def _any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` as a Python value, as the server reads it."""
    if depth > 32 or not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        raw = value["intValue"]
        return int(raw) if isinstance(raw, (int, str)) and str(raw).lstrip("-").isdigit() else None
    if "doubleValue" in value:
        return value["doubleValue"]
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [_any_value(v, depth + 1) for v in items]
    if "kvlistValue" in value:
        return _key_values((value["kvlistValue"] or {}).get("values"), depth + 1)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _key_values(values: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(values, list):
        return {}
    out: dict[str, Any] = {}
    for kv in values:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str) and kv["key"]:
            out[kv["key"]] = _any_value(kv.get("value"), depth + 1)
    return out


def _level_of(severity: Any) -> str:
    if not isinstance(severity, int) or severity <= 0:
        return "info"
    for top, level in ((8, "debug"), (12, "info"), (16, "warn"), (20, "error")):
        if severity <= top:
            return level
    return "fatal"


def normalize_otlp(payload: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The log records of an OTLP export, flattened as Logwell's server does: each with
    its ``resource`` and ``attributes`` as dicts, its ``scope`` name, ``message``,
    ``level`` and the record's own fields. Returns the records and the reasons for any
    refused one. Raises OtlpValidationError for a request the server refuses whole."""
    if not isinstance(payload, dict):
        raise OtlpValidationError("Request body must be an object.")
    resource_logs = payload.get("resourceLogs")
    if not isinstance(resource_logs, list):
        raise OtlpValidationError("resourceLogs must be an array.")
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    for resource_log in resource_logs:
        if not isinstance(resource_log, dict):
            continue
        resource = _key_values((resource_log.get("resource") or {}).get("attributes"))
        for scope_log in resource_log.get("scopeLogs") or []:
            if not isinstance(scope_log, dict):
                continue
            scope = scope_log.get("scope") or {}
            for record in scope_log.get("logRecords") or []:
                if not isinstance(record, dict):
                    errors.append("Log record rejected: must be an object.")
                    continue
                attributes = _key_values(record.get("attributes"))
                body = _any_value(record.get("body"))
                severity = record.get("severityNumber")
                records.append(
                    {
                        **record,
                        "resource": resource,
                        "scope": scope.get("name"),
                        "attributes": attributes,
                        "body": body,
                        "message": body if isinstance(body, str) else json.dumps(body),
                        "level": _level_of(severity),
                    }
                )
    return records, errors


class _TokenBucket:
    """The server's rate limit: ``rate`` requests a second, bursts of up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class LogwellReceiver:
    """A Logwell-compatible ingest endpoint on loopback. Thread-safe."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        host: str = "127.0.0.1",
        *,
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
        #: Seconds the 429 replies of the rate limit ask the client to wait.
        self.rate_limit_retry_after = 1.0
        self._bucket: Optional[_TokenBucket] = None
        self._faults: deque[Fault] = deque()
        self._cond = threading.Condition()
        self._server = _QuietServer((host, 0), _make_handler(self))
        self._server.daemon_threads = True
        self._scheme = "http"
        if ssl_context is not None:
            # The handshake happens in the request's thread, not in accept().
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._scheme = "https"
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def rate_limit(self) -> Optional[float]:
        """Requests a second the key may make (a token bucket, as Logwell's per-minute
        one); past it the reply is 429 with ``Retry-After``. None: no limit."""
        return self._bucket.rate if self._bucket else None

    @rate_limit.setter
    def rate_limit(self, rate: Optional[float]) -> None:
        with self._cond:
            self._bucket = _TokenBucket(rate) if rate else None

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

    def stop(self) -> None:
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
        body: Optional[dict[str, Any]] = None,
        delay: float = 0.0,
    ) -> None:
        """Makes the next ``count`` requests answer ``status`` without storing anything."""
        with self._cond:
            for _ in range(count):
                self._faults.append(Fault(status, body, retry_after, delay))

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Waits until at least ``count`` entries (of either route) were accepted; returns
        whether they were."""
        deadline = time.monotonic() + timeout
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

    def _handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
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
        if media_type != "application/json":
            return self._refuse(415, "unsupported_media_type", "Use application/json", headers)
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
            status, refusal, _ = self._refuse(
                429, "rate_limited", "Rate limit exceeded. Retry later.", headers
            )
            return status, refusal, {"Retry-After": f"{self.rate_limit_retry_after:g}"}
        try:
            payload = json.loads(body)
        except ValueError:
            return self._refuse(400, "invalid_json", "Body is not valid JSON", headers)
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
        # The real server stores a batch in one transaction that a fractional line
        # number makes fail as a whole.
        if any(isinstance(e.get("lineNumber"), float) for e in accepted):
            return self._refuse(500, "internal_error", "Failed to store logs", headers)
        with self._cond:
            self.entries.extend(accepted)
            self._cond.notify_all()
        self._record(200, len(entries), len(accepted), headers)
        reply: dict[str, Any] = {"accepted": len(accepted)}
        if errors:
            reply.update(rejected=len(errors), errors=errors)
        return 200, reply, {}

    def _handle_otlp(
        self, payload: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
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

    def _refuse(
        self, status: int, error: str, message: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
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
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_FAULT_NAMES = {401: "unauthorized", 429: "rate_limited", 400: "validation_error"}


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

        def _reply(self, status: int, reply: dict[str, Any], extra: dict[str, str]) -> None:
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a test's output is not the place for access logs

    return Handler
