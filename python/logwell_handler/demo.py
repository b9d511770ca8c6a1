"""The demo: log through LogwellHandler and print what the server accepted.

    python -m logwell_handler.demo

Ships to ``LOGWELL_ENDPOINT`` with ``LOGWELL_API_KEY`` when both are set, otherwise to a
local Logwell-compatible receiver started for the occasion. Exits 0 when every record
was delivered.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Optional

from . import LogwellHandler
from .testing import LogwellReceiver


def _ship(log: logging.Logger) -> int:
    log.debug("cache warm", extra={"entries": 1200})
    log.info("user %s signed in", "ada", extra={"request_id": "req-1", "user_id": "u-42"})
    log.warning("disk at %d%%", 91, extra={"mount": "/var"})
    try:
        {"present": 1}["missing"]
    except KeyError:
        log.exception("lookup failed", extra={"request_id": "req-2"})
    log.critical("payment provider unreachable", stack_info=True)
    return 5


def main(argv: Optional[list[str]] = None) -> int:
    endpoint = os.environ.get("LOGWELL_ENDPOINT")
    api_key = os.environ.get("LOGWELL_API_KEY")
    receiver: Optional[LogwellReceiver] = None
    if not (endpoint and api_key):
        receiver = LogwellReceiver().start()
        endpoint, api_key = receiver.endpoint, receiver.api_key
        print(
            f"LOGWELL_ENDPOINT/LOGWELL_API_KEY not set: shipping to a local receiver at {endpoint}"
        )
    else:
        print(f"shipping to {endpoint}")

    handler = LogwellHandler(
        api_key=api_key,
        endpoint=endpoint,
        service=os.environ.get("LOGWELL_SERVICE", "logwell-demo"),
    )
    log = logging.getLogger("logwell_demo")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)

    start = time.perf_counter()
    sent = _ship(log)
    delivered = handler.flush(timeout=15)
    elapsed = time.perf_counter() - start
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()

    print(
        f"logged {sent} records; server accepted {stats['sent']} in {stats['batches']} "
        f"request(s) ({elapsed * 1000:.0f} ms); dropped "
        f"{stats['dropped_overflow'] + stats['dropped_at_close']}, "
        f"failed {stats['failed']}, retries {stats['retries']}"
    )
    if receiver is not None:
        for entry in receiver.entries:
            where = f"{entry.get('sourceFile')}:{entry.get('lineNumber')}"
            keys = ", ".join(sorted(entry.get("metadata", {})))
            print(f"  {entry['level']:<5} {entry['message']!r:<40} {where}  metadata: {keys}")
        receiver.stop()
    if not delivered or stats["sent"] != sent:
        print(f"not everything was delivered: last error: {stats['last_error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
