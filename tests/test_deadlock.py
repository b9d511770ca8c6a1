"""flush() honours its deadline and cannot deadlock, whoever holds which lock."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from logwell_handler import LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env


def test_flush_against_a_server_that_never_answers_returns_at_its_deadline(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.delay = 30
    handler = make_handler(shutdown_timeout=0.5)
    logger.addHandler(handler)
    logger.info("stuck")
    start = time.monotonic()
    assert handler.flush(timeout=0.5) is False
    assert time.monotonic() - start < 3, "its deadline, not the reply 30 s away"


def test_logging_shutdown_is_bounded_by_shutdown_timeout(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.delay = 30
    handler = make_handler(shutdown_timeout=1.0)
    logger.addHandler(handler)
    logger.info("stuck")
    start = time.monotonic()
    # What the interpreter runs at exit: flush() then close() on every handler.
    logging.shutdown([weakref.ref(handler)])
    assert time.monotonic() - start < 6, "bounded, not the reply 30 s away"
    # The request is still out (it has its own `timeout`); it is not counted as sent.
    stats = handler.stats()
    assert stats["sent"] == 0
    assert stats["queued"] + stats["dropped_at_close"] == 1


@contextlib.contextmanager
def held_by_another_thread(lock: Any) -> Iterator[None]:
    """Another thread takes `lock` and keeps it until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        yield
    finally:
        release.set()
        holder.join()


def test_flush_while_another_thread_holds_the_logging_module_lock(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    logger.info("before the lock is taken")
    with held_by_another_thread(logging._lock):  # type: ignore[attr-defined]
        start = time.monotonic()
        assert handler.flush(timeout=5)
        assert time.monotonic() - start < 2
    assert logwell_receiver.messages() == ["before the lock is taken"]


def test_logging_and_flush_while_another_thread_holds_the_handler_lock(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    assert handler.lock is not None
    with held_by_another_thread(handler.lock):
        logger.info("while the handler lock is held")
        assert handler.flush(timeout=5)
    assert logwell_receiver.messages() == ["while the handler lock is held"]


def test_flush_beside_a_thread_spinning_in_python(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        for i in range(200):
            logger.info("beside a spinner %d", i)
        start = time.monotonic()
        assert handler.flush(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        stop.set()
        spinner.join()
    assert len(logwell_receiver.entries) == 200


GIL_HOLDER = textwrap.dedent(
    """
    import ctypes, logging, sys
    from logwell_handler import LogwellHandler

    log = logging.getLogger("gil")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(LogwellHandler(batch_size=100))
    for i in range(100):
        log.info("shipped while the GIL is held %d", i)
    print("holding", flush=True)
    # A PyDLL call keeps the GIL for its whole length: no Python thread runs until the
    # test writes a byte to our stdin.
    ctypes.PyDLL(None).read(0, ctypes.create_string_buffer(1), 1)
    """
)


def test_records_ship_while_a_thread_holds_the_gil(logwell_receiver: LogwellReceiver) -> None:
    env = {**os.environ, **receiver_env(logwell_receiver)}
    with subprocess.Popen(
        [sys.executable, "-c", GIL_HOLDER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdin is not None
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "holding"
            # The 100th record woke the flush thread, which needs no GIL to send.
            assert logwell_receiver.wait_for(100, timeout=30)
            assert proc.poll() is None, "the child holds the GIL until told"
            proc.stdin.write("x")
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()


def test_close_from_inside_on_error_does_not_wait_on_itself(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    took: list[float] = []
    handlers: list[LogwellHandler] = []

    def on_error(_: object) -> None:
        # On the shipping thread: close() tells it to stop, and returns.
        start = time.monotonic()
        handlers[0].close()
        took.append(time.monotonic() - start)

    handler = make_handler(on_error=on_error, max_retries=0, shutdown_timeout=2)
    handlers.append(handler)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=401)
    logger.info("refused")
    assert handler.flush(timeout=5)
    assert len(took) == 1
    assert took[0] < 0.5, took
    logger.info("after close")
    assert handler.stats()["ignored_after_close"] == 1


def test_close_with_a_request_still_out_is_bounded_and_then_returns_at_once(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.delay = 30
    errors: list[LogwellError] = []
    handler = make_handler(shutdown_timeout=0.5, on_error=errors.append)
    logger.addHandler(handler)
    logger.info("never answered")
    # The request goes out before any close deadline exists, and outlives the one
    # close() sets: close() returns at that deadline with the request still out.
    assert handler.flush(timeout=0.1) is False
    start = time.monotonic()
    handler.close()
    assert time.monotonic() - start < 3, "its deadline, not the reply 30 s away"
    assert handler.stats()["queued"] == 1
    assert [e.message for e in errors] == [
        "1 log entries were in a request still unanswered at the shutdown deadline: "
        "they are lost unless the server answers before the process exits"
    ]
    # Closed: nothing left to wait for, as logging.shutdown finds it at exit.
    start = time.monotonic()
    assert handler.flush(timeout=5) is False
    handler.close()
    assert time.monotonic() - start < 2, "at once, not flush's 5 s"
