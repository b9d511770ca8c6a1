"""Large records are batched by bytes as well as by count: a burst of them goes out at
once, whole, and the shipping thread sleeps while they wait on a slow server."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024])
def test_100_large_records_go_out_before_the_flush_tick_without_a_flush(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver, size: int
) -> None:
    handler = make_handler(flush_interval=60)
    logger.addHandler(handler)
    for i in range(100):
        logger.info("%d %s", i, "x" * size)
    # Well before the tick: by bytes, they make full batches.
    assert logwell_receiver.wait_for(100, timeout=30), handler.stats()
    assert handler.stats()["dropped_overflow"] == 0


@pytest.mark.parametrize(("count", "size"), [(1500, 8 * 1024), (200, 64 * 1024)])
def test_a_burst_under_the_byte_bound_arrives_whole(
    make_handler: MakeHandler,
    logger: logging.Logger,
    logwell_receiver: LogwellReceiver,
    count: int,
    size: int,
) -> None:
    handler = make_handler(flush_interval=5.0)
    logger.addHandler(handler)
    for i in range(count):
        logger.info("%d %s", i, "x" * size)
    assert logwell_receiver.wait_for(count, timeout=30), handler.stats()
    assert handler.flush(timeout=5)  # the last reply read
    stats = handler.stats()
    assert (stats["sent"], stats["dropped_overflow"]) == (count, 0), stats
    assert max(len(json.dumps(r)) for r in logwell_receiver.entries) > size
    assert sorted(int(m.split()[0]) for m in logwell_receiver.messages()) == list(range(count))


# Large entries waiting while the one request out waits on a slow server: the process's
# CPU time over two seconds is what the shipping thread spent (the main thread sleeps).
WAITING = textwrap.dedent(
    """
    import json, logging, sys, time
    from logwell_handler import LogwellHandler

    count, size, batch_size = map(int, sys.argv[1:4])
    handler = LogwellHandler(batch_size=batch_size)
    log = logging.getLogger("large")
    log.propagate = False
    log.addHandler(handler)
    for i in range(count):
        log.error("%d %s", i, "x" * size)
    cpu = time.process_time()
    time.sleep(2.0)  # the window measured, not a wait for anything
    print(json.dumps({"cpu": time.process_time() - cpu, "stats": handler.stats()}))
    handler.close()
    """
)


@pytest.mark.parametrize(
    ("count", "size", "batch_size"), [(60, 8 * 1024, 50), (100, 3 * 1024, 100)]
)
def test_the_shipping_thread_sleeps_while_large_entries_wait_on_a_slow_server(
    logwell_receiver: LogwellReceiver, count: int, size: int, batch_size: int
) -> None:
    logwell_receiver.delay = 1.0  # every reply takes a second
    proc, _ = run_python(
        WAITING, str(count), str(size), str(batch_size), env=receiver_env(logwell_receiver)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cpu"] < 0.2, result
    assert result["stats"]["dropped_overflow"] == 0, result


def test_the_last_records_of_a_burst_go_once_it_is_over_not_at_the_tick(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.delay = 2.0  # replies come 2 s after the entries are stored
    handler = make_handler(flush_interval=60)
    logger.addHandler(handler)
    for i in range(50):  # a batch: it goes at once
        logger.info("burst %d", i)
    assert logwell_receiver.wait_for(50, timeout=5)
    for i in range(50, 70):  # logged while that request waits for its reply
        logger.info("burst %d", i)
    # Fewer than a batch, and the tick a minute away: they go once the burst is over.
    assert logwell_receiver.wait_for(70, timeout=10), handler.stats()
