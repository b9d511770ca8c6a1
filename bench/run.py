"""The cost of shipping Python logs, LogwellHandler side by side with the other ways.

    .venv/bin/python bench/run.py [--records 100000] [--reps 3] [--out results.json]

Starts the sink (bench/sink.py), then runs every contender (bench/contender.py) in a
fresh process: a burst of ``--records`` records from 1 thread and from 4, and a
shipment beside a CPU-bound neighbour thread. Contenders are interleaved across
repetitions and medians reported, each as a ratio to the handler that only formats.
Prints Markdown tables; ``--out`` also saves the figures for bench/plot.py.
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
from pathlib import Path
from typing import Any, Optional

from contender import KINDS, LIBRARY_DEFAULTS, SHIPPERS

HERE = Path(__file__).resolve().parent
BASELINE = "format-only"
THREADS = (1, 4)


def start_sink() -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "sink.py")], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    line = sink.stdout.readline()
    if not line.startswith("port "):
        sink.kill()
        raise SystemExit(f"the sink did not start: {line!r}")
    return sink, f"http://127.0.0.1:{line.split()[1]}"


def run_contender(kind: str, records: int, threads: int, mode: str, sink: str) -> dict[str, Any]:
    args = [str(HERE / "contender.py"), kind, str(records), str(threads), mode, sink]
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} {mode} x{threads} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["uncountable"]:
        raise SystemExit(f"{kind}: the sink could not count {result['uncountable']} requests")
    return result


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def summarise(
    runs: list[dict[str, Any]], base: list[dict[str, Any]], records: int
) -> dict[str, Any]:
    delivered = median(runs, "delivered") / records
    row: dict[str, Any] = {
        "us_per_call": median(runs, "us_per_call"),
        "cpu_us_per_record": median(runs, "cpu_us_per_record"),
        "shipping_cpu_us_per_record": median(runs, "shipping_cpu_us_per_record"),
        # What a record that got there cost: a queue that drops looks cheap per record.
        "cpu_us_per_delivered": median(runs, "cpu_us_per_record") / delivered
        if delivered
        else float("inf"),
        "peak_rss_mb": median(runs, "peak_rss_mb"),
        "drain_s": median(runs, "drain_s"),
        "delivered": delivered,
        "requests": median(runs, "requests"),
    }
    for key in ("us_per_call", "cpu_us_per_record", "peak_rss_mb"):
        row[f"{key}_ratio"] = row[key] / median(base, key)
    return row


def table(rows: dict[tuple[str, int], dict[str, Any]]) -> str:
    lines = [
        "| contender | threads | µs per call | vs fmt | CPU µs per record | vs fmt "
        "| CPU µs per delivered record | shipping CPU µs per record | drain s | delivered "
        "| requests | records per request | peak RSS MB | vs fmt |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for (kind, threads), r in rows.items():
        shipped = kind in SHIPPERS
        per_request = r["delivered"] * r["records"] / r["requests"] if r["requests"] else 0
        lines.append(
            f"| {kind} | {threads} | {r['us_per_call']:.2f} | {r['us_per_call_ratio']:.2f} "
            f"| {r['cpu_us_per_record']:.2f} | {r['cpu_us_per_record_ratio']:.2f} "
            + (
                f"| {r['cpu_us_per_delivered']:.2f} | {r['shipping_cpu_us_per_record']:.2f} "
                f"| {r['drain_s']:.2f} | {r['delivered']:.1%} | {r['requests']:.0f} "
                f"| {per_request:.1f} "
                if shipped
                else "| - | - | - | - | - | - "
            )
            + f"| {r['peak_rss_mb']:.1f} | {r['peak_rss_mb_ratio']:.2f} |"
        )
    return "\n".join(lines)


def defaults_table(rows: dict[tuple[str, int], dict[str, Any]]) -> str:
    """Each peer with its default queue beside the same peer sized to deliver all."""
    lines = [
        "| contender | queue | µs per call | CPU µs per record | delivered "
        "| CPU µs per delivered record |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in LIBRARY_DEFAULTS:
        sized = kind.removesuffix("-defaults")
        for name, queue in ((kind, "library default"), (sized, "sized to deliver all")):
            if (name, 1) not in rows:
                continue
            r = rows[(name, 1)]
            lines.append(
                f"| {sized} | {queue} | {r['us_per_call']:.2f} | {r['cpu_us_per_record']:.2f} "
                f"| {r['delivered']:.1%} | {r['cpu_us_per_delivered']:.2f} |"
            )
    return "\n".join(lines)


def neighbour_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| contender | neighbour slowed by | neighbour off CPU | timed over s "
        "| shipment s | delivered |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, r in rows.items():
        lines.append(
            f"| {kind} | {r['neighbour_slowdown']:.1%} | {r['neighbour_off_cpu']:.1%} "
            f"| {r['neighbour_window_s']:.2f} | {r['drain_s']:.2f} | {r['delivered']:.1%} |"
        )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--contenders",
        nargs="*",
        default=KINDS + LIBRARY_DEFAULTS,
        choices=KINDS + LIBRARY_DEFAULTS,
    )
    parser.add_argument("--out", type=Path, help="save the figures here as JSON")
    args = parser.parse_args(argv)
    kinds = [k for k in KINDS if k in args.contenders or k == BASELINE]
    # The library-defaults runs only feed their own table: one thread, no neighbour.
    defaults = [k for k in LIBRARY_DEFAULTS if k in args.contenders]
    neighbours = ["null", *(k for k in kinds if k in SHIPPERS)]

    burst: dict[tuple[str, int], list[dict[str, Any]]] = {}
    beside: dict[str, list[dict[str, Any]]] = {}
    sink, sink_url = start_sink()
    try:
        for rep in range(args.reps):
            for threads in THREADS:
                for kind in kinds:
                    print(f"rep {rep + 1}: {kind} x{threads}", file=sys.stderr, flush=True)
                    burst.setdefault((kind, threads), []).append(
                        run_contender(kind, args.records, threads, "burst", sink_url)
                    )
            for kind in defaults:
                print(f"rep {rep + 1}: {kind} x1", file=sys.stderr, flush=True)
                burst.setdefault((kind, 1), []).append(
                    run_contender(kind, args.records, 1, "burst", sink_url)
                )
            for kind in neighbours:
                print(f"rep {rep + 1}: {kind} beside a neighbour", file=sys.stderr, flush=True)
                beside.setdefault(kind, []).append(
                    run_contender(kind, args.records, 1, "neighbour", sink_url)
                )
    finally:
        sink.kill()

    rows = {
        key: summarise(runs, burst[(BASELINE, key[1])], args.records) | {"records": args.records}
        for key, runs in burst.items()
    }
    neighbour_rows = {
        kind: {
            key: median(runs, key)
            for key in ("neighbour_slowdown", "neighbour_off_cpu", "neighbour_window_s", "drain_s")
        }
        | {"delivered": median(runs, "delivered") / (args.records * runs[0]["cycles"])}
        for kind, runs in beside.items()
    }
    machine = (
        f"{args.records} records, median of {args.reps}; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(machine)
    print(table({k: r for k, r in rows.items() if k[0] not in LIBRARY_DEFAULTS}))
    print()
    print(defaults_table(rows))
    print()
    print(neighbour_table(neighbour_rows))
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "burst": [{"contender": k, "threads": t, **r} for (k, t), r in rows.items()],
                    "neighbour": [{"contender": k, **r} for k, r in neighbour_rows.items()],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
