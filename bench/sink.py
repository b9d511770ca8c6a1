"""A cheap Logwell-compatible HTTP sink for the benchmark: it counts what it accepts.

    python bench/sink.py            # prints "port N" once listening on 127.0.0.1

It shares the machine's cores with the process under test, so it does as little as it
can: one asyncio protocol per connection, a minimal HTTP/1.1 keep-alive parser, and one
C-level parse per request to count the records in it.

- ``POST /v1/ingest``: a JSON array of Logwell entries.
- ``POST /v1/logs``: OTLP/HTTP, protobuf or JSON; records are counted across
  ``resourceLogs`` -> ``scopeLogs`` -> ``logRecords``.
- Any other ``POST``: one record per request (the standard library's HTTPHandler).

Control, for the benchmark driver and its children:

- ``GET /stats``: ``{"records", "requests", "bytes", "bad"}`` accepted since the start.
- ``POST /pause``: park every request until ``POST /resume``; the clients block on
  their first request, as against a server that has stalled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

# A stalled client must not keep a parked request forever.
MAX_PAUSE_S = 25.0


@dataclass
class Counters:
    records: int = 0
    requests: int = 0
    bytes: int = 0
    bad: int = 0  # requests that could not be counted: a client or sink bug


@dataclass
class Request:
    method: bytes
    path: bytes
    headers: dict[bytes, bytes]
    body: bytes


@dataclass
class Sink:
    counters: Counters = field(default_factory=Counters)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.resumed.set()

    async def answer(self, request: Request) -> tuple[int, bytes, bytes]:
        """Returns the status, content type and body of the reply."""
        path = request.path.split(b"?", 1)[0]
        if request.method == b"GET" and path == b"/stats":
            return 200, b"application/json", json.dumps(vars(self.counters)).encode()
        if request.method == b"POST" and path == b"/pause":
            self.resumed.clear()
            return 200, b"text/plain", b"paused"
        if request.method == b"POST" and path == b"/resume":
            self.resumed.set()
            return 200, b"text/plain", b"resumed"
        if request.method != b"POST":
            return 405, b"text/plain", b"POST only"
        if not self.resumed.is_set():
            try:
                await asyncio.wait_for(self.resumed.wait(), MAX_PAUSE_S)
            except asyncio.TimeoutError:
                self.resumed.set()
        try:
            count = count_records(path, request.headers.get(b"content-type", b""), request.body)
        except Exception as error:  # a body the sink cannot count is reported, not hidden
            self.counters.bad += 1
            return 400, b"text/plain", f"uncountable body: {error}".encode()
        self.counters.records += count
        self.counters.requests += 1
        self.counters.bytes += len(request.body)
        if path == b"/v1/logs":
            return 200, b"application/json", b"{}"
        return 200, b"application/json", b'{"accepted":%d}' % count


def count_records(path: bytes, content_type: bytes, body: bytes) -> int:
    if path == b"/v1/ingest":
        entries = json.loads(body)
        if not isinstance(entries, list):
            raise ValueError("expected a JSON array")
        return len(entries)
    if path == b"/v1/logs":
        if content_type.startswith(b"application/x-protobuf"):
            return count_otlp_protobuf(body)
        doc: dict[str, Any] = json.loads(body)
        return sum(
            len(scope.get("logRecords", []))
            for resource in doc["resourceLogs"]
            for scope in resource.get("scopeLogs", [])
        )
    return 1


def count_otlp_protobuf(body: bytes) -> int:
    # Imported on first use: only the OpenTelemetry contender sends protobuf.
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
    )

    request = ExportLogsServiceRequest.FromString(body)
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)


class Connection(asyncio.Protocol):
    """Parses HTTP/1.1 requests off one connection and answers them in order."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.transport: Optional[asyncio.Transport] = None
        self.busy = False  # a request is being answered; more data waits behind it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.next_request()

    def next_request(self) -> None:
        request = self.parse()
        if request is not None:
            self.busy = True
            task = asyncio.ensure_future(self.sink.answer(request))
            task.add_done_callback(lambda t: self.reply(t, request))

    def parse(self) -> Optional[Request]:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).split(b"\r\n")
        method, path, _ = head[0].split(b" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"transfer-encoding" in headers:
            # No client in the benchmark sends chunked bodies; say so rather than guess.
            self.respond(411, b"text/plain", b"Content-Length required", close=True)
            return None
        length = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return Request(method, path, headers, body)

    def reply(self, task: asyncio.Future[tuple[int, bytes, bytes]], request: Request) -> None:
        status, content_type, body = task.result()
        close = request.headers.get(b"connection", b"").lower() == b"close"
        self.respond(status, content_type, body, close)
        self.busy = False
        if not close:
            self.next_request()

    def respond(self, status: int, content_type: bytes, body: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (status, content_type, len(body), b"Connection: close\r\n" if close else b"")
            + body
        )
        if close:
            self.transport.close()


async def serve(port: int) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(sink), "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # On the last CPU, with the shippers, off the one the benchmark's neighbour thread
    # takes (see contender.py).
    cpus = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cpus > 1:
        os.sched_setaffinity(0, {cpus - 1})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
