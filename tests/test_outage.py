"""While the server is down, memory stays bounded by bytes as well as by count."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from conftest import run_python
from test_overflow import unused_port

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys
    from logwell_handler import LogwellHandler

    def peak_rss_mb():
        # This image's own peak: getrusage's ru_maxrss keeps the parent's across exec,
        # and a parent larger than this child would hide all growth.
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    big = "x" * 1_000_000
    handler = LogwellHandler(
        max_message_bytes=int(os.environ["MAX_MESSAGE"]),
        max_retries=0,
        shutdown_timeout=0.5,
        on_error=lambda error: None,
    )
    log = logging.getLogger("flood")
    log.propagate = False
    log.addHandler(handler)
    before = peak_rss_mb()
    for i in range(int(sys.argv[1])):
        log.error(big)
    stats = handler.stats()
    print(json.dumps({"growth_mb": peak_rss_mb() - before, "stats": stats}))
    """
)


def flood(max_message: int, count: int) -> dict[str, Any]:
    proc, _ = run_python(
        SCRIPT,
        str(count),
        env={
            "LOGWELL_ENDPOINT": f"http://127.0.0.1:{unused_port()}",
            "LOGWELL_API_KEY": "lw_" + "k" * 32,
            "MAX_MESSAGE": str(max_message),
        },
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_a_flood_of_1mb_messages_is_capped_by_max_queue_bytes() -> None:
    # 1000 entries of 1 MB each would take 1 GB; the 64 MiB byte bound holds ~64.
    result = flood(max_message=1 << 20, count=1000)
    stats = result["stats"]
    assert stats["queued"] <= 70, stats
    assert stats["dropped_overflow"] >= 930, stats
    assert result["growth_mb"] < 130, result


def test_with_default_limits_the_same_flood_is_truncated_and_capped() -> None:
    result = flood(max_message=64 * 1024, count=2000)
    stats = result["stats"]
    # 64 KiB entries: the byte bound holds about 1024 of them.
    assert 900 <= stats["queued"] <= 1030, stats
    assert stats["queued"] + stats["dropped_overflow"] == 2000
    assert result["growth_mb"] < 130, result
