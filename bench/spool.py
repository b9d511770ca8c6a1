"""The disk spool's throughput: how fast an outage's records go to disk, and how fast a
later process sends them again.

    python bench/spool.py [--records N] [--shapes SHAPE ...] [--out FILE]

For each record shape of contender.py:

1. write: a fresh process logs N records while the server is down, into a 1 000-entry
   memory queue, so the spool takes nearly all of them as they come, then closes the
   handler, which writes the rest. Records/s and MB/s of spool from the first log call
   to the end of close(); the logging loop's own time beside it.
2. replay: the sink (bench/sink.py) starts at the address that was down, and a fresh
   process on the same spool_dir sends everything (no request budget): records/s and
   MB/s of spool from the handler's construction to the sink counting all N.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from contender import SHAPES, sink_stats

HERE = Path(__file__).resolve().parent
KEY = "lw_" + "b" * 32

WRITE = textwrap.dedent(
    """
    import json, logging, sys, time
    from contender import SHAPES
    from logwell_handler import LogwellHandler

    spool_dir, endpoint, records, shape = sys.argv[1:5]
    records = int(records)
    handler = LogwellHandler(
        api_key=sys.argv[5], endpoint=endpoint, spool_dir=spool_dir, max_queue_size=1000,
        max_retries=0, max_requests_per_minute=0, on_error=lambda error: None,
    )
    log = logging.getLogger("bench")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    call = SHAPES[shape]
    start = time.perf_counter()
    for i in range(records):
        call(log, i)
    logged = time.perf_counter()
    # What the queue still holds is written at close, at once.
    handler.close()
    done = time.perf_counter()
    stats = handler.stats()
    print(json.dumps({"logging_s": logged - start, "total_s": done - start,
                      "spooled": stats["spooled"], "spool_bytes": stats["spool_bytes"],
                      "dropped": stats["dropped_overflow"] + stats["dropped_spool_full"]}))
    """
)

REPLAY = textwrap.dedent(
    """
    import json, sys, time, urllib.request
    from logwell_handler import LogwellHandler

    spool_dir, endpoint, records = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = time.perf_counter()
    handler = LogwellHandler(api_key=sys.argv[4], endpoint=endpoint, spool_dir=spool_dir,
                             max_requests_per_minute=0)
    while time.perf_counter() - start < 300:
        with urllib.request.urlopen(endpoint + "/stats") as reply:
            if json.load(reply)["records"] >= records:
                break
        time.sleep(0.001)
    done = time.perf_counter()
    handler.close()
    print(json.dumps({"total_s": done - start, "replayed": handler.stats()["replayed"]}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(records: int, shape: str) -> dict[str, Any]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as spool_dir:
        written = child(WRITE, spool_dir, endpoint, str(records), shape, KEY)
        if written["spooled"] != records or written["dropped"]:
            raise SystemExit(f"{shape}: not everything was spooled: {written}")
        sink = subprocess.Popen(
            [sys.executable, str(HERE / "sink.py"), "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sink.stdout is not None
            sink.stdout.readline()
            replayed = child(REPLAY, spool_dir, endpoint, str(records), KEY)
            delivered = sink_stats(endpoint)["records"]
        finally:
            sink.terminate()
            sink.wait(timeout=10)
    mb = written["spool_bytes"] / 1e6
    return {
        "shape": shape,
        "records": records,
        "spool_mb": round(mb, 1),
        "write_records_per_s": round(records / written["total_s"]),
        "write_mb_per_s": round(mb / written["total_s"], 1),
        "logging_loop_s": round(written["logging_s"], 2),
        "replay_records_per_s": round(records / replayed["total_s"]),
        "replay_mb_per_s": round(mb / replayed["total_s"], 1),
        "delivered": delivered,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--shapes", nargs="+", choices=list(SHAPES), default=["standard", "64 KB message"]
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for shape in args.shapes:
        # 64 KB records: fewer, for the same order of bytes.
        records = args.records if shape != "64 KB message" else max(1, args.records // 100)
        row = measure(records, shape)
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    header = (
        "| shape | records | spool MB | write records/s | write MB/s | replay records/s "
        "| replay MB/s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    print(header)
    for r in rows:
        print(
            f"| {r['shape']} | {r['records']} | {r['spool_mb']} | {r['write_records_per_s']} "
            f"| {r['write_mb_per_s']} | {r['replay_records_per_s']} | {r['replay_mb_per_s']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
