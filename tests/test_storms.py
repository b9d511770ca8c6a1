"""Log storms: when the queue must drop, it drops the least important records first."""

from __future__ import annotations

import logging

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_a_debug_storm_costs_no_error_record(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # The real server's limit: 600 requests at once, then 10 a second.
    logwell_receiver.rate_limit_per_minute = 600
    handler = make_handler(max_queue_size=2_000, flush_interval=0.5)
    logger.addHandler(handler)
    for i in range(1_000):
        for j in range(200):
            logger.debug("cache miss %d", j)  # one hot line: 200 000 records
        logger.error("payment %d failed", i)  # other lines
    assert handler.flush(timeout=120)
    stats = handler.stats()
    errors = [e["message"] for e in logwell_receiver.entries if e["level"] == "error"]
    assert errors == [f"payment {i} failed" for i in range(1_000)], "every one, in order"
    by_level = stats["dropped_by_level"]
    assert by_level["debug"] > 0
    assert by_level["info"] == by_level["warn"] == by_level["error"] == by_level["fatal"] == 0
    assert stats["dropped_overflow"] == by_level["debug"]
    debug = sum(e["level"] == "debug" for e in logwell_receiver.entries)
    assert debug + by_level["debug"] == 200_000, "each debug record arrived or was counted"
