"""The cost of `Core.emit` alone, per protocol, without OpenTelemetry, with it imported
but no span, and inside a span: what trace correlation costs.

    .venv/bin/python bench/emit_cost.py [--calls 200000]

Each case runs in a fresh interpreter, so "without" really has no OpenTelemetry module
loaded. The figure is the best of 5 runs of `--calls` calls on one prepared record.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import timeit
from contextlib import ExitStack
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logwell_handler.types import ProtocolName

CASES = ("absent", "imported", "in a span")
PROTOCOLS = ("logwell", "otlp")


def measure(protocol: ProtocolName, case: str, calls: int) -> float:
    """Seconds per `Core.emit` call, in this process."""
    from logwell_handler import LogwellHandler
    from logwell_handler.testing import LogwellReceiver

    with LogwellReceiver() as receiver, ExitStack() as stack:
        handler = LogwellHandler(
            api_key=receiver.api_key,
            endpoint=receiver.endpoint,
            protocol=protocol,
            max_queue_size=1_000_000,
            max_queue_bytes=1 << 31,
            flush_interval=60,
            batch_size=100,
        )
        record = logging.LogRecord("app", 20, "/srv/app.py", 10, "user %s did %s", (1, "x"), None)
        record.user_id = "u-1"
        if case != "absent":
            from opentelemetry.sdk.trace import TracerProvider

            tracer = TracerProvider().get_tracer("bench")
            if case == "in a span":
                stack.enter_context(tracer.start_as_current_span("span"))
        emit = handler._core.emit
        best = min(timeit.repeat(lambda: emit(record, None, None), number=calls, repeat=5))
        handler.close()
        return best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--protocol", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child: one measurement, printed in µs
        print(measure(args.protocol, args.case, args.calls) * 1e6)
        sys.stdout.flush()
        os._exit(0)  # the queue holds a million entries: no need to drain them
    print("| protocol | " + " | ".join(CASES) + " |")
    print("| --- | " + " | ".join("---:" for _ in CASES) + " |")
    for protocol in PROTOCOLS:
        cells = []
        for case in CASES:
            child = ["--calls", str(args.calls), "--case", case, "--protocol", protocol]
            out = subprocess.run(
                [sys.executable, __file__, *child],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            cells.append(f"{float(out):.2f} µs")
        print(f"| {protocol} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
