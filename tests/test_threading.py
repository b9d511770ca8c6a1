from __future__ import annotations

import logging
import threading
from collections import Counter

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_ten_thousand_records_from_eight_threads_arrive_exactly_once(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(batch_size=100)
    logger.addHandler(handler)
    threads_n, per_thread = 8, 1250
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            logger.info("t%d-%d", t, i, extra={"thread_no": t})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(timeout=30)
    counts = Counter(logwell_receiver.messages())
    assert len(counts) == threads_n * per_thread
    assert set(counts.values()) == {1}, "no record twice"
    stats = handler.stats()
    assert stats["sent"] == threads_n * per_thread
    assert stats["dropped_overflow"] == stats["failed"] == 0
    assert all(r.entries <= 100 for r in logwell_receiver.requests)


def test_batches_carry_up_to_100_entries_under_backlog(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(batch_size=10, flush_interval=60)
    logger.addHandler(handler)
    logwell_receiver.delay = 0.2  # let a backlog build while the first request is out
    for i in range(1000):
        logger.info("m%d", i)
    assert handler.flush(timeout=30)
    sizes = [r.entries for r in logwell_receiver.requests]
    assert sum(sizes) == 1000
    assert max(sizes) == 100
    assert len(sizes) < 30, sizes
