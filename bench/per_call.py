"""App-thread cost of one ``logger.info()`` call: LogwellHandler against a handler that
only formats (the least any shipping handler pays) and NullHandler (the floor).

    .venv/bin/python bench/per_call.py [--records 100000] [--reps 3]

Each contender runs in a fresh subprocess; the receiver runs in this process, so its
work is not charged to the process measured. Contenders are interleaved across
repetitions and medians are reported, with each figure as a ratio to format-only.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Any

from logwell_handler.testing import LogwellReceiver

CONTENDERS = ["null", "format-only", "logwell"]

CHILD = r"""
import json, logging, sys, threading, time

kind, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class FormatOnly(logging.Handler):
    def emit(self, record):
        self.format(record)


log = logging.getLogger("bench")
log.setLevel(logging.INFO)
log.propagate = False
if kind == "null":
    handler = logging.NullHandler()
elif kind == "format-only":
    handler = FormatOnly()
else:
    from logwell_handler import LogwellHandler
    handler = LogwellHandler(service="bench")
log.addHandler(handler)


def work(count):
    for i in range(count):
        log.info("user %s did %s", i, "thing", extra={"request_id": f"r-{i}", "n": i})


work(1000)  # warm-up: imports, first connection, caches
if kind == "logwell":
    handler.flush(timeout=30)
    warm_sent = handler.stats()["sent"]

per_thread = n // threads
workers = [threading.Thread(target=work, args=(per_thread,)) for _ in range(threads)]
cpu0, t0 = time.process_time(), time.perf_counter()
for w in workers:
    w.start()
for w in workers:
    w.join()
app = time.perf_counter() - t0
delivered = None
if kind == "logwell":
    handler.flush(timeout=120)
    stats = handler.stats()
    delivered = stats["sent"] - warm_sent
drain = time.perf_counter() - t0 - app
cpu = time.process_time() - cpu0
print(json.dumps({
    "us_per_call": app / (per_thread * threads) * 1e6,
    "cpu_us_per_record": cpu / (per_thread * threads) * 1e6,
    "drain_s": drain,
    "delivered": delivered,
}))
"""


def run_one(kind: str, records: int, threads: int, receiver: LogwellReceiver) -> dict[str, Any]:
    env = {**os.environ, "LOGWELL_ENDPOINT": receiver.endpoint, "LOGWELL_API_KEY": receiver.api_key}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(records), str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with LogwellReceiver() as receiver:
        for _ in range(args.reps):
            for threads in (1, 4):
                for kind in CONTENDERS:
                    receiver.clear()
                    results.setdefault((kind, threads), []).append(
                        run_one(kind, args.records, threads, receiver)
                    )

    print(
        f"{args.records} records, median of {args.reps}; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"{'contender':<12} {'threads':>7} {'us/call':>8} {'x fmt':>6} "
        f"{'cpu us/rec':>10} {'x fmt':>6} {'drain s':>8} {'delivered':>10}"
    )
    for threads in (1, 4):
        base = results[("format-only", threads)]
        base_call = statistics.median(r["us_per_call"] for r in base)
        base_cpu = statistics.median(r["cpu_us_per_record"] for r in base)
        for kind in CONTENDERS:
            runs = results[(kind, threads)]
            call = statistics.median(r["us_per_call"] for r in runs)
            cpu = statistics.median(r["cpu_us_per_record"] for r in runs)
            drain = statistics.median(r["drain_s"] for r in runs)
            delivered = runs[-1]["delivered"]
            print(
                f"{kind:<12} {threads:>7} {call:>8.2f} {call / base_call:>6.2f} "
                f"{cpu:>10.2f} {cpu / base_cpu:>6.2f} {drain:>8.2f} "
                f"{'-' if delivered is None else delivered:>10}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
