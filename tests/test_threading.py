from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_16_threads_with_flushes_and_level_changes_arrive_once_in_order(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # Room for the whole run, and no request budget (the receiver has none): this test is
    # about threads, not overflow or pacing.
    handler = make_handler(
        batch_size=100,
        max_queue_size=400_000,
        max_queue_bytes=1 << 28,
        max_requests_per_minute=0,
    )
    logger.addHandler(handler)
    threads_n, per_thread = 16, 20_000
    start = threading.Barrier(threads_n + 2)
    done = threading.Event()
    flushes: list[bool] = []

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            logger.info("t%d %d", t, i)

    def flush_loop() -> None:
        start.wait()
        while not done.is_set():
            flushes.append(handler.flush(timeout=5))

    def level_changer() -> None:
        start.wait()
        levels = [logging.NOTSET, logging.DEBUG, logging.INFO]
        n = 0
        while not done.is_set():
            handler.setLevel(levels[n % 3])  # each lets INFO through
            n += 1
            time.sleep(0.001)

    helpers = [threading.Thread(target=flush_loop), threading.Thread(target=level_changer)]
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in helpers + workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    for t in helpers:
        t.join()
    assert handler.flush(timeout=60)
    assert len(flushes) > 0
    total = threads_n * per_thread
    stats = handler.stats()
    assert stats["sent"] == total, stats
    assert stats["dropped_overflow"] == stats["failed"] == 0
    per_thread_seen: dict[str, list[int]] = defaultdict(list)
    for message in logwell_receiver.messages():
        thread, i = message.split()
        per_thread_seen[thread].append(int(i))
    assert len(per_thread_seen) == threads_n
    for thread, seen in per_thread_seen.items():
        assert seen == list(range(per_thread)), f"{thread}: out of order or not exactly once"
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
