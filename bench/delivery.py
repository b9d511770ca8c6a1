"""How a backlog reaches a rate-limited Logwell: LogwellHandler beside the official SDK.

    .venv/bin/python bench/delivery.py [--records 100000] [--processes 4] [--peers]

Against the package's receiver with Logwell's limits (one bucket of 600 requests per key,
refilled at 600 a minute, 429 with `Retry-After: 60`) answering each request in 25 ms
(about the real server's 4 000 entries a second on these machines), each contender ships
a backlog of ``--records`` from one process, then from ``--processes`` processes sharing
the key. Reported: the time until the receiver holds all of it, as a ratio to the least
the limit allows, and the 429s. Then LogwellHandler alone: large records to a receiver
with no limit (MB/s of message), and the CPU its shipping thread uses while large entries
wait on a slow server. ``--peers`` adds the official SDK (``pip install logwell``).
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

from logwell_handler.testing import LogwellReceiver

PER_MINUTE = 600
PER_REQUEST = 100
REPLY_DELAY = 0.025

# What each child reports as its peak memory: this image's own (getrusage's ru_maxrss
# keeps the parent's across exec).
PEAK_RSS = textwrap.dedent(
    """
    def peak_rss_mb():
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    """
)

OURS = PEAK_RSS + textwrap.dedent(
    """
    import json, logging, os, sys, time
    from logwell_handler import LogwellHandler

    records, size = int(sys.argv[1]), int(sys.argv[2])
    handler = LogwellHandler(service="bench", **json.loads(sys.argv[3]))
    log = logging.getLogger("bench")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    filler = "x" * size
    for i in range(records):
        log.info("record %d %s", i, filler, extra={"request_id": "r-1", "n": i})
    cpu = time.process_time()
    time.sleep(float(os.environ.get("BENCH_IDLE", "0")))
    idle_cpu = time.process_time() - cpu
    handler.flush(timeout=600)
    print(json.dumps({
        "stats": handler.stats(),
        "idle_cpu": idle_cpu,
        "peak_rss_mb": peak_rss_mb(),
    }))
    """
)

OFFICIAL = PEAK_RSS + textwrap.dedent(
    """
    import asyncio, json, sys
    from logwell import Logwell

    records, size = int(sys.argv[1]), int(sys.argv[2])
    client = Logwell({
        "api_key": sys.argv[4], "endpoint": sys.argv[5], "service": "bench",
        "batch_size": 100, "max_queue_size": 100_000,
    })
    filler = "x" * size
    for i in range(records):
        client.info(f"record {i} {filler}", {"request_id": "r-1", "n": i})
    asyncio.run(client.shutdown())
    print(json.dumps({
        "stats": {}, "idle_cpu": 0.0,
        "peak_rss_mb": peak_rss_mb(),
    }))
    """
)


def least_seconds(records: int) -> float:
    """Through a full bucket: PER_MINUTE requests at once, then PER_MINUTE a minute."""
    return max(0.0, records / PER_REQUEST - PER_MINUTE) * 60 / PER_MINUTE


def ship(
    receiver: LogwellReceiver,
    contender: str,
    records: int,
    processes: int = 1,
    size: int = 0,
    settings: dict[str, Any] | None = None,
    idle: float = 0.0,
) -> dict[str, Any]:
    """Runs `processes` children of `contender` at once; returns what the receiver
    stored and when it stored the last of it, the 429s, and what the children reported."""
    receiver.clear()
    code = OURS if contender == "logwell-handler" else OFFICIAL
    env = {
        **os.environ,
        "LOGWELL_API_KEY": receiver.api_key,
        "LOGWELL_ENDPOINT": receiver.endpoint,
        "BENCH_IDLE": str(idle),
    }
    args = [str(records), str(size), json.dumps(settings or {}), receiver.api_key]
    start = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args, receiver.endpoint],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=900)
        if child.returncode != 0:
            raise SystemExit(f"{contender} failed ({child.returncode}):\n{err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # Until the last entry was stored: a child may take a while longer to exit.
    stored_at = [r.at for r in receiver.requests if r.accepted]
    return {
        "contender": contender,
        "stored": len(receiver.entries),
        "seconds": max(stored_at, default=start) - start,
        "429s": receiver.statuses().count(429),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in reports),
        "idle_cpu": max(r["idle_cpu"] for r in reports),
        "stats": [r["stats"] for r in reports],
    }


def backlogs(records: int, processes: int, peers: bool) -> None:
    print(f"## A backlog through Logwell's limit ({PER_MINUTE} a minute, bucket {PER_MINUTE})")
    print()
    print("| contender | backlog | stored | took | x least possible | 429s | peak RSS |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    contenders = ["logwell-handler"] + (["official-sdk"] if peers else [])
    with LogwellReceiver() as receiver:
        receiver.delay = REPLY_DELAY
        for contender in contenders:
            for n, each in ((1, records), (processes, records // processes)):
                # A fresh bucket for each run, as for a fresh project.
                receiver.rate_limit_per_minute = PER_MINUTE
                r = ship(receiver, contender, each, processes=n)
                least = least_seconds(each * n)
                print(
                    f"| {contender} | {n} x {each:,} | {r['stored']:,} | {r['seconds']:.1f} s "
                    f"| {r['seconds'] / least:.2f} | {r['429s']} | {r['peak_rss_mb']:.0f} MB |"
                )
    print()


def large_records() -> None:
    print("## Large records, LogwellHandler with default settings")
    print()
    print("| records | to | took | MB/s of message | dropped | shipping CPU in 2 s idle |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    with LogwellReceiver() as receiver:
        for count, size in ((1500, 8 * 1024), (200, 64 * 1024), (5000, 8 * 1024)):
            r = ship(receiver, "logwell-handler", count, size=size)
            dropped = sum(s["dropped_overflow"] for s in r["stats"])
            mb = count * size / 1e6
            print(
                f"| {count:,} x {size // 1024} KB | a fast receiver | {r['seconds']:.2f} s "
                f"| {mb / r['seconds']:.0f} | {dropped} | |"
            )
        receiver.delay = 1.0
        for count, size, batch in ((60, 8 * 1024, 50), (100, 3 * 1024, 100)):
            r = ship(
                receiver,
                "logwell-handler",
                count,
                size=size,
                settings={"batch_size": batch},
                idle=2.0,
            )
            print(
                f"| {count} x {size // 1024} KB, batch_size {batch} | a server answering in 1 s "
                f"| {r['seconds']:.2f} s | | 0 | {r['idle_cpu'] * 1000:.0f} ms |"
            )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--peers", action="store_true", help="add the official SDK")
    args = parser.parse_args()
    backlogs(args.records, args.processes, args.peers)
    large_records()


if __name__ == "__main__":
    main()
