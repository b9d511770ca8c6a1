from __future__ import annotations

import logging
import socket

from logwell_handler import ErrorCode, LogwellError, LogwellHandler

from conftest import last_error


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_overflow_is_counted_and_reported_once_per_cycle(
    logger: logging.Logger,
) -> None:
    errors: list[LogwellError] = []
    handler = LogwellHandler(
        api_key="lw_" + "k" * 32,
        endpoint=f"http://127.0.0.1:{unused_port()}",
        max_queue_size=100,
        max_retries=0,
        flush_interval=0.1,
        shutdown_timeout=0.5,
        on_error=errors.append,
    )
    logger.addHandler(handler)
    for i in range(1000):
        logger.info("m%d", i)
    assert handler.flush(timeout=0.5) is False
    stats = handler.stats()
    assert stats["sent"] == 0
    # All but the newest 100 in the buffer and the one batch held for its retry.
    assert stats["dropped_overflow"] >= 800, stats
    assert stats["queued"] + stats["dropped_overflow"] == 1000
    assert any(e.code is ErrorCode.NETWORK_ERROR for e in errors)
    handler.close()
    final = handler.stats()
    # The thread reports what overflowed once a cycle, so the reports can trail the
    # counter until it stops; by then every dropped entry was reported.
    overflow = [e for e in errors if e.code is ErrorCode.QUEUE_OVERFLOW]
    assert 0 < len(overflow) < 10, "one report per cycle, not one per entry"
    assert sum(int(e.message.split()[0]) for e in overflow) == final["dropped_overflow"]
    assert final["queued"] == 0
    assert final["dropped_overflow"] + final["dropped_at_close"] == 1000
    assert last_error(final)["code"] == "NETWORK_ERROR"


def test_byte_bound_caps_a_flood_of_large_messages(logger: logging.Logger) -> None:
    handler = LogwellHandler(
        api_key="lw_" + "k" * 32,
        endpoint=f"http://127.0.0.1:{unused_port()}",
        max_queue_bytes=1024 * 1024,
        max_message_bytes=200_000,
        max_retries=0,
        shutdown_timeout=0.2,
    )
    logger.addHandler(handler)
    big = "x" * 100_000
    for _ in range(100):
        logger.info(big)
    stats = handler.stats()
    # The buffer's 1 MiB, and the request's worth (256 KiB) the shipper holds.
    assert stats["queued"] <= 13, stats
    assert stats["dropped_overflow"] >= 87
    handler.close()
