"""One contender of the benchmark, in a fresh process: set up, warm up, log, drain, report.

    python bench/contender.py KIND RECORDS THREADS MODE SINK_URL [SHAPE]

MODE ``burst`` logs RECORDS records from THREADS threads as fast as they go and times the
calls and the drain. MODE ``neighbour`` logs them while the sink is paused, then lets the
shipment go while a CPU-bound pure-Python thread runs beside it, and compares that
thread's progress with its progress before the shipment. One JSON line goes to stdout.
MODE ``calls`` only logs RECORDS records on the main thread and exits at once, for
bench/instructions.py to count under callgrind. SHAPE is a key of ``SHAPES``.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.handlers
import os
import queue
import resource
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from logwell_handler.types import ProtocolName

KINDS = [
    "null",
    "format-only",
    "logwell-handler",
    "logwell-handler-otlp",
    "logwell-handler-spool",
    "official-sdk-handler",
    "logwell-client",
    "official-sdk-client",
    "queue-http-handler",
    "opentelemetry",
]
# The storm guard's cost per call: on every call but never tripping (`-guarded`), and
# tripped by the benchmark's one call site, so nearly every call is counted, not queued
# (`-storming`).
STORM_GUARD = {"logwell-handler-guarded": 1_000_000, "logwell-handler-storming": 1}
# The peers whose default queues drop most of a burst, run as they come: the main table
# sizes their queues to deliver everything, as a user who wants their logs would.
LIBRARY_DEFAULTS = [
    "official-sdk-handler-defaults",
    "official-sdk-client-defaults",
    "opentelemetry-defaults",
]
SHIPPERS = KINDS[2:] + LIBRARY_DEFAULTS
WARM_UP = 1_000
API_KEY = "lw_" + "b" * 32


@dataclass
class Contender:
    log: Callable[[int], None]
    # Waits until everything logged so far is delivered, as far as the contender can.
    drain: Callable[[], object]
    # Delivers the warm-up records and leaves the contender ready for more.
    settle: Callable[[], object]
    # Whether it can log again after drain().
    reusable: bool = True


def sink_stats(sink: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{sink}/stats", timeout=10) as reply:
        stats: dict[str, int] = json.load(reply)
        return stats


def sink_control(sink: str, action: str) -> None:
    request = urllib.request.Request(f"{sink}/{action}", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).close()


def stable_stats(sink: str, quiet_s: float = 0.3, limit_s: float = 10.0) -> dict[str, int]:
    """The sink's counters once nothing more has arrived for ``quiet_s``."""
    stats = sink_stats(sink)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = sink_stats(sink)
        if now == stats:
            break
        stats = now
    return stats


class FormatOnly(logging.Handler):
    """The least any handler that ships text pays: format the record."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class OfficialSdkHandler(logging.Handler):
    """The smallest adapter from logging to the official SDK's client: message, level
    and the record's ``extra`` as metadata."""

    LEVELS: ClassVar[dict[int, str]] = {
        logging.DEBUG: "debug",
        logging.INFO: "info",
        logging.WARNING: "warn",
        logging.ERROR: "error",
        logging.CRITICAL: "fatal",
    }

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
            self.client.log(
                {
                    "level": self.LEVELS.get(record.levelno, "info"),
                    "message": self.format(record),
                    "metadata": extra,
                }
            )
        except Exception:
            self.handleError(record)


# The record shapes: what one log call looks like. "standard" is what the wall-clock
# tables use.
EXTRAS_100 = {f"field_{k}": k if k % 2 else f"value {k}" for k in range(100)}
# A long report logged whole: lines of text, each ending in the newline JSON escapes.
BODY_64K = "".join(
    f"{n:05d} GET /api/v1/items/{n} 200 in 3.2 ms cache=hit region=eu-west-1 user=alice\n"
    for n in range(800)
)[:64_000]


Shape = Callable[[logging.Logger, int], None]


def standard(log: logging.Logger, i: int) -> None:
    log.info("user %s did %s", i, "thing", extra={"request_id": f"r-{i}", "n": i})


def extras_100(log: logging.Logger, i: int) -> None:
    log.info("user %s did %s", i, "thing", extra=EXTRAS_100)


def message_64k(log: logging.Logger, i: int) -> None:
    log.info("response %s: %s", i, BODY_64K)


SHAPES: dict[str, Shape] = {
    "standard": standard,
    "100 extras": extras_100,
    "64 KB message": message_64k,
}


def logger_calls(handler: logging.Handler, shape: Shape) -> Callable[[int], None]:
    log = logging.getLogger("bench")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    return lambda i: shape(log, i)


def nothing() -> None:
    pass


@functools.cache
def spool_dir() -> tempfile.TemporaryDirectory[str]:
    """A directory for the spool contender, removed at exit (after the handlers' exit
    drain, which is registered later and so runs first)."""
    return tempfile.TemporaryDirectory(prefix="bench-spool-")


def make(kind: str, sink: str, shape: Shape = standard) -> Contender:
    if kind == "null":
        return Contender(logger_calls(logging.NullHandler(), shape), nothing, nothing)
    if kind == "format-only":
        return Contender(logger_calls(FormatOnly(), shape), nothing, nothing)
    if kind.startswith("logwell-handler"):
        from logwell_handler import LogwellHandler

        protocol: ProtocolName = "otlp" if kind.endswith("otlp") else "logwell"
        # With a spool: a healthy server never makes it write, and a log call never does.
        spool = spool_dir().name if kind.endswith("spool") else None
        ours = LogwellHandler(
            API_KEY,
            sink,
            "bench",
            protocol=protocol,
            spool_dir=spool,
            storm_limit=STORM_GUARD.get(kind),
        )

        def flush() -> None:
            if not ours.flush(timeout=300):
                sys.exit("flush timed out")

        return Contender(logger_calls(ours, shape), flush, flush)
    if kind == "logwell-client":
        from logwell_handler import Logwell

        client = Logwell(API_KEY, sink, "bench")

        def call(i: int) -> None:
            client.info(f"user {i} did thing", {"request_id": f"r-{i}", "n": i})

        return Contender(call, lambda: client.flush(timeout=300), lambda: client.flush(timeout=30))
    if kind.startswith("official-sdk"):
        return official_sdk(kind, sink, shape)
    if kind == "queue-http-handler":
        return queue_http_handler(sink, shape)
    if kind.startswith("opentelemetry"):
        return opentelemetry(sink, shape, defaults=kind.endswith("-defaults"))
    raise SystemExit(f"unknown contender {kind!r}; known: {', '.join(KINDS + LIBRARY_DEFAULTS)}")


def official_sdk(kind: str, sink: str, shape: Shape) -> Contender:
    from logwell import Logwell  # type: ignore[import-not-found, unused-ignore]

    if kind.endswith("-defaults"):
        client = Logwell({"api_key": API_KEY, "endpoint": sink, "service": "bench"})
    else:
        # Its largest queue and batch: the default (1 000, 50) drops most of a burst.
        client = Logwell(
            {
                "api_key": API_KEY,
                "endpoint": sink,
                "service": "bench",
                "max_queue_size": 100_000,
                "batch_size": 100,
            }
        )
    if kind.startswith("official-sdk-handler"):
        call = logger_calls(OfficialSdkHandler(client), shape)
    else:

        def call(i: int) -> None:
            client.info(f"user {i} did thing", {"request_id": f"r-{i}", "n": i})

    import asyncio

    # Its flush() returns at once while a flush it started itself is under way; only
    # shutdown() waits for everything.
    return Contender(
        call,
        lambda: asyncio.run(client.shutdown()),
        lambda: asyncio.run(client.flush()),
        reusable=False,
    )


def queue_http_handler(sink: str, shape: Shape) -> Contender:
    records: queue.Queue[Any] = queue.Queue()
    host = sink.removeprefix("http://")
    listener = logging.handlers.QueueListener(
        records, logging.handlers.HTTPHandler(host, "/http-handler", method="POST")
    )
    listener.start()
    handler = logging.handlers.QueueHandler(records)
    return Contender(logger_calls(handler, shape), records.join, records.join)


def opentelemetry(sink: str, shape: Shape, defaults: bool) -> Contender:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    exporter = OTLPLogExporter(endpoint=f"{sink}/v1/logs")
    # The default queue (2 048) drops most of a burst.
    processor = (
        BatchLogRecordProcessor(exporter)
        if defaults
        else BatchLogRecordProcessor(exporter, max_queue_size=1_000_000)
    )
    provider.add_log_record_processor(processor)
    handler = LoggingHandler(logger_provider=provider)

    def flush() -> None:
        provider.force_flush()

    return Contender(logger_calls(handler, shape), flush, flush)


def log_from_threads(log: Callable[[int], None], records: int, threads: int) -> float:
    """Logs ``records`` records from ``threads`` threads; returns the CPU seconds those
    threads spent: the rest of the process's CPU is the shipping."""
    spent: list[float] = []

    def work(count: int) -> None:
        cpu0 = time.thread_time()
        for i in range(count):
            log(i)
        spent.append(time.thread_time() - cpu0)

    workers = [threading.Thread(target=work, args=(records // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(spent)


def burst(contender: Contender, records: int, threads: int) -> dict[str, Any]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    logging_cpu = log_from_threads(contender.log, records, threads)
    app = time.perf_counter() - t0
    contender.drain()
    drain = time.perf_counter() - t0 - app
    cpu = time.process_time() - cpu0
    return {
        "us_per_call": app / records * 1e6,
        "cpu_us_per_record": cpu / records * 1e6,
        # Everything but the logging threads: the shipping thread(s), and the drain call.
        "shipping_cpu_us_per_record": (cpu - logging_cpu) / records * 1e6,
        "drain_s": drain,
    }


FIRST_CPU, LAST_CPU = 0, (os.cpu_count() or 1) - 1


def pin_to(cpu: int) -> None:
    """Keeps the calling thread (and threads it starts later) on one CPU, where Linux
    allows it. The neighbour gets a CPU of its own and everything else shares the other
    with the sink: what slows the neighbour then is the GIL, not a busy core."""
    if hasattr(os, "sched_setaffinity") and LAST_CPU > FIRST_CPU:
        os.sched_setaffinity(0, {cpu})


# The neighbour is timed beside shipments until this many cycles or seconds.
NEIGHBOUR_CYCLES = 5
NEIGHBOUR_WINDOW_S = 10.0


@dataclass
class Window:
    """The neighbour's progress summed over windows."""

    steps: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    cycles: int = 0

    def add(self, other: Window) -> None:
        self.steps += other.steps
        self.wall += other.wall
        self.cpu += other.cpu
        self.cycles += 1

    @property
    def rate(self) -> float:
        return self.steps / self.wall


class Neighbour(threading.Thread):
    """Pure-Python work in small steps, on a CPU of its own. While ``during`` runs on the
    calling thread it counts its steps, the wall time and its own CPU time: wall time it
    did not run is time it waited for the GIL."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.limit_s = limit_s
        self.counting = threading.Event()
        self.stop = False
        self.window = Window(cycles=1)

    @classmethod
    def timed(cls, during: Callable[[], object], limit_s: float = NEIGHBOUR_WINDOW_S) -> Window:
        """Counts while ``during`` runs, for ``limit_s`` at most."""
        neighbour = cls(limit_s)
        neighbour.start()
        neighbour.counting.wait()
        try:
            during()
        finally:
            neighbour.stop = True
            neighbour.join()
        return neighbour.window

    def run(self) -> None:
        pin_to(FIRST_CPU)
        for _ in range(100):  # settle on its CPU before counting
            self.step()
        steps, wall0, cpu0 = 0, time.perf_counter(), time.thread_time()
        self.counting.set()
        until = wall0 + self.limit_s
        while not self.stop and time.perf_counter() < until:
            self.step()
            steps += 1
        self.window = Window(
            steps, time.perf_counter() - wall0, time.thread_time() - cpu0, cycles=1
        )

    @staticmethod
    def step() -> None:
        total = 0
        for k in range(1_000):
            total += k * k


def beside_neighbour(
    contender: Contender, records: int, threads: int, sink: str, ships: bool
) -> dict[str, Any]:
    """Shipments of ``records`` beside the neighbour, in cycles until ``NEIGHBOUR_CYCLES``
    or ``NEIGHBOUR_WINDOW_S`` of windows: one window of a fast shipment is too short to
    tell a few per cent from the noise of a shared machine. Its pace alone is timed
    before the first shipment and after the last, when nothing else runs."""
    alone = Neighbour.timed(lambda: time.sleep(0.5))
    beside = Window()
    shipping_s = 0.0
    while beside.cycles < NEIGHBOUR_CYCLES and beside.wall < NEIGHBOUR_WINDOW_S:
        sink_control(sink, "pause")
        try:
            log_from_threads(contender.log, records, threads)
        finally:
            sink_control(sink, "resume")
        t0 = time.perf_counter()
        # Without a shipment, the same neighbour beside nothing: the noise floor.
        beside.add(
            Neighbour.timed(
                contender.drain if ships else lambda: time.sleep(0.2),
                limit_s=NEIGHBOUR_WINDOW_S - beside.wall,
            )
        )
        shipping_s += time.perf_counter() - t0
        if not contender.reusable:
            break
    alone.add(Neighbour.timed(lambda: time.sleep(0.5)))
    return {
        "neighbour_slowdown": 1 - beside.rate / alone.rate,
        "neighbour_off_cpu": 1 - beside.cpu / beside.wall,
        "neighbour_window_s": beside.wall,
        "drain_s": shipping_s / beside.cycles,
        "cycles": beside.cycles,
    }


def main() -> int:
    kind, records, threads, mode, sink = sys.argv[1:6]
    shape = SHAPES[sys.argv[6] if len(sys.argv) > 6 else "standard"]
    if mode == "neighbour":
        pin_to(LAST_CPU)
    contender = make(kind, sink, shape)
    for i in range(WARM_UP):  # imports, first connection, caches
        contender.log(i)
    contender.settle()
    if mode == "calls":
        for i in range(int(records)):
            contender.log(i)
        sys.stdout.flush()
        os._exit(0)  # whatever is still queued is not the calling thread's cost
    before = stable_stats(sink)
    if mode == "burst":
        result = burst(contender, int(records), int(threads))
    else:
        ships = kind in SHIPPERS
        result = beside_neighbour(contender, int(records), int(threads), sink, ships)
    after = stable_stats(sink)
    result.update(
        delivered=after["records"] - before["records"],
        requests=after["requests"] - before["requests"],
        uncountable=after["bad"] - before["bad"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
