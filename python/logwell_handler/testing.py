"""A local Logwell-compatible receiver for tests and demos.

It listens on 127.0.0.1 (a free port), checks each request the way Logwell's server does
(media type, API key, rate limit, JSON, batch size, each entry, what the database refuses),
keeps what it accepted, and can be told to misbehave. It serves both of Logwell's routes:
``/v1/ingest`` (the simple API, kept in ``entries``) and ``/v1/logs`` (OTLP/HTTP JSON,
normalised as the server does and kept in ``log_records``). docs/testing.md lists where it
follows the real server::

    from logwell_handler.testing import LogwellReceiver

    with LogwellReceiver() as receiver:
        handler = LogwellHandler(api_key=receiver.api_key, endpoint=receiver.endpoint)
        ...
        receiver.fail_next(2, status=500)     # the next two requests answer 500
        receiver.rate_limit_per_minute = 600  # the server's default: 600 at once, then 10/s
        receiver.max_body_bytes = 65536       # larger bodies get 413
        receiver.refuse_batch_if = lambda e: "poison" in e["message"]   # whole batch 400
        receiver.fail_batch_if = lambda e: "poison" in e["message"]     # whole batch 500
        receiver.wait_for(10)                 # until 10 entries were accepted
        receiver.entries                      # the accepted entries, as dicts
        receiver.log_records                  # the accepted OTLP records, normalised
        receiver.otlp_reply = "collector"     # answer /v1/logs as a collector does

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
from typing import Any, Callable, Optional, Union

__all__ = ["Fault", "LogwellReceiver", "ReceivedRequest", "normalize_otlp"]

MAX_BATCH = 100
LEVELS = frozenset({"debug", "info", "warn", "error", "fatal"})
_KEY = re.compile(r"^lw_[A-Za-z0-9_-]{32}$")

# A reply's body: JSON, or text as it goes out.
_Body = Union[dict[str, Any], str]
# What the receiver answers a request: status, body, extra headers.
_Reply = tuple[int, _Body, dict[str, str]]


@dataclass
class Fault:
    """One injected misbehaviour, used for the next request that reaches the receiver."""

    status: int = 500
    #: A dict goes out as JSON, a str as text.
    body: Optional[_Body] = None
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
    """The server's rate limit: a bucket holding up to ``per_minute`` requests, full at
    first, refilled continuously at ``per_minute`` a minute; a request takes one."""

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.tokens = per_minute
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        refill = (now - self.last) / 60 * self.per_minute
        self.tokens = min(self.per_minute, self.tokens + refill)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# The media types an HTML form can send. SvelteKit, which the server is built on, answers
# a cross-site POST of one of them 403 before any route runs; an API client sends no
# Origin header, so for it every such POST is cross-site.
_FORM_MEDIA_TYPES = frozenset(
    {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
        "application/x-sveltekit-formdata",
    }
)
_CSRF_MESSAGE = "Cross-site POST form submissions are forbidden"

# Stands for the HTML page SvelteKit sends for an error a route did not handle, when the
# client does not ask for JSON.
_ERROR_PAGE = (
    '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8" />'
    "<title>Internal server error</title></head>\n"
    "<body><h1>500</h1><p>Internal server error</p></body>\n</html>\n"
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> Any:
    """The body as the server's ``request.json()`` reads it: the bytes as they came
    (``Content-Encoding`` is not honoured, so a gzip body is invalid JSON), decoded as
    UTF-8 (a BOM dropped, a bad byte replaced), strict JSON (no NaN or Infinity)."""
    return json.loads(body.decode("utf-8-sig", errors="replace"), parse_constant=_refuse_constant)


def _has_nul(value: Any) -> bool:
    """Whether a U+0000 is in ``value``: a str, or any key or value of a dict or list at
    any depth. PostgreSQL stores no NUL in text or jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


# A media range's weight parameter, as in ``text/html;q=0.9``.
_Q = re.compile(r"q=\d*\.?\d+|q=\d+\.")


def _prefers_json(accept: Optional[str]) -> bool:
    """Whether an ``Accept`` header ranks ``application/json`` at least as high as
    ``text/html``, as SvelteKit decides the form of an error reply. No header counts as
    ``text/html``; ``*/*`` (what most HTTP clients send) as JSON."""
    best: dict[str, tuple[float, int, int]] = {}
    for index, part in enumerate((accept or "text/html").split(",")):
        media_range, *params = (p.strip() for p in part.split(";"))
        if "/" not in media_range:
            continue
        kind, sub = media_range.lower().split("/", 1)
        weights = [float(p[2:]) for p in params if _Q.fullmatch(p)]
        q = weights[0] if weights else 1.0
        # Higher q first, then the more specific range, then the earlier one.
        rank = (-q, (kind == "*") + (sub == "*"), index)
        for candidate in ("application/json", "text/html"):
            c_kind, c_sub = candidate.split("/")
            if kind in (c_kind, "*") and sub in (c_sub, "*"):
                best[candidate] = min(best.get(candidate, rank), rank)
    if "application/json" not in best:
        return False
    return "text/html" not in best or best["application/json"] <= best["text/html"]


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
        #: A batch holding an entry (or OTLP record) for which this returns true fails
        #: whole with 500, as the server's transaction does on what its database refuses.
        self.fail_batch_if: Optional[Callable[[dict[str, Any]], bool]] = None
        #: Seconds the 429 replies of the rate limit ask the client to wait: the server
        #: always says 60, whatever its bucket holds.
        self.rate_limit_retry_after: float = 60
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
        body: Optional[_Body] = None,
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
