"""A server that limits requests per second gets a backlog at its own pace, whole."""

from __future__ import annotations

import logging
import time

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_a_50k_burst_under_a_rate_limit_arrives_whole_with_few_429s(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.rate_limit = 100  # requests a second, bursts of 100
    # batch_size only decides when a send starts: under a backlog requests carry 100.
    handler = make_handler(batch_size=10)
    logger.addHandler(handler)
    for i in range(50_000):
        logger.info("burst %d", i)
    assert logwell_receiver.wait_for(50_000, timeout=60), handler.stats()
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert stats["sent"] == 50_000
    assert stats["dropped_overflow"] == stats["failed"] == 0
    statuses = logwell_receiver.statuses()
    assert 1 <= statuses.count(429) <= 5, f"{statuses.count(429)} 429s"
    assert stats["rate_limited_waits"] == statuses.count(429)
    assert stats["rate_limited_wait_ms"] >= 1000 * stats["rate_limited_waits"]
    sizes = [r.entries for r in logwell_receiver.requests if r.status == 200]
    assert max(sizes) == 100
    assert len(sizes) <= 520, "nearly every request full"
    assert logwell_receiver.messages() == [f"burst {i}" for i in range(50_000)], "in order"


def test_backlog_after_an_outage_drains_without_a_429_storm(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.fail_next(1_000_000, status=503)  # down
    logwell_receiver.rate_limit = 20
    handler = make_handler(batch_size=100, max_retries=1)
    logger.addHandler(handler)
    for i in range(10_000):
        logger.info("during outage %d", i)
    time.sleep(1.0)
    assert handler.stats()["sent"] == 0
    logwell_receiver.clear()  # back up
    assert logwell_receiver.wait_for(10_000, timeout=60), handler.stats()
    assert handler.flush(timeout=10)
    statuses = logwell_receiver.statuses()
    assert statuses.count(429) <= 5, f"{statuses.count(429)} 429s"
    stats = handler.stats()
    assert stats["sent"] == 10_000
    assert stats["dropped_overflow"] == stats["failed"] == 0
