from __future__ import annotations

import logging
import time

from logwell_handler import LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_flush_returns_true_only_after_delivery(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(flush_interval=60)
    logger.addHandler(handler)
    logwell_receiver.delay = 1.0
    logger.info("slow")
    assert handler.flush(timeout=0.2) is False, "reply not back yet"
    assert logwell_receiver.wait_for(1, timeout=5), "the server has it and holds the reply"
    stats = handler.stats()
    assert (stats["sent"], stats["queued"]) == (0, 1), "not sent until the server says so"
    assert handler.flush(timeout=10) is True
    assert handler.stats()["sent"] == 1
    assert logwell_receiver.messages() == ["slow"]


def test_flush_with_nothing_queued_returns_at_once(make_handler: MakeHandler) -> None:
    handler = make_handler()
    start = time.monotonic()
    assert handler.flush(timeout=5)
    assert time.monotonic() - start < 0.5


def test_flush_interval_sends_without_flush(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(flush_interval=0.2, batch_size=100)
    logger.addHandler(handler)
    logger.info("on the timer")
    assert logwell_receiver.wait_for(1, timeout=5)


def test_batch_size_triggers_a_send_before_the_interval(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(flush_interval=60, batch_size=5)
    logger.addHandler(handler)
    for i in range(5):
        logger.info("m%d", i)
    assert logwell_receiver.wait_for(5, timeout=5)


def test_on_flush_reports_accepted_counts(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    delivered: list[int] = []
    handler = make_handler(on_flush=delivered.append)
    logger.addHandler(handler)
    for i in range(120):
        logger.info("m%d", i)
    assert handler.flush(timeout=10)
    assert sum(delivered) == 120


def test_callback_exceptions_do_not_stop_shipping(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    def explode(_: object) -> None:
        raise RuntimeError("user callback bug")

    handler = make_handler(on_flush=explode, on_error=explode)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=401)
    logger.info("refused")
    assert handler.flush(timeout=10)
    logger.info("accepted")
    assert handler.flush(timeout=10)
    assert logwell_receiver.messages() == ["accepted"]


def test_flush_from_inside_on_error_does_not_deadlock(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    results: list[bool] = []
    handlers: list[LogwellHandler] = []

    def on_error(_: LogwellError) -> None:
        # Called on the shipping thread while it still holds the failed batch: waiting
        # for it here would wait on ourselves.
        results.append(handlers[0].flush(timeout=5))

    handler = make_handler(on_error=on_error, max_retries=0, flush_interval=60)
    handlers.append(handler)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=503)
    start = time.monotonic()
    logger.info("retried later")
    assert handler.flush(timeout=2) is False
    assert results == [False]
    assert time.monotonic() - start < 3
    assert handler.flush(timeout=10) is True
    assert logwell_receiver.messages() == ["retried later"]
