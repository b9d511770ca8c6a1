from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import warnings

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def fork() -> int:
    with warnings.catch_warnings():
        # 3.12+ warns about fork() in a process with threads; that is the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def test_child_ships_its_own_records_and_never_the_parents(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(flush_interval=60)
    logger.addHandler(handler)
    logger.info("parent before fork")  # queued in the parent, not sent yet
    pid = fork()
    if pid == 0:
        code = 1
        try:
            logger.info("child %d", os.getpid(), extra={"pid": os.getpid()})
            code = 0 if handler.flush(timeout=10) and handler.stats()["sent"] == 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert handler.flush(timeout=10)
    assert sorted(logwell_receiver.messages()) == sorted(["parent before fork", f"child {pid}"])
    child_entry = next(e for e in logwell_receiver.entries if e["message"].startswith("child"))
    assert child_entry["metadata"]["pid"] == pid


def _worker(n: int) -> None:
    logging.getLogger("mp.fork").info("worker %d from %d", n, os.getpid())


def test_multiprocessing_fork_workers(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    if sys.platform == "darwin":
        pytest.skip("fork start method is unsafe on macOS")
    handler = make_handler(flush_interval=60)  # only the exit path can deliver in time
    log = logging.getLogger("mp.fork")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("parent")
        ctx = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pool = ctx.Pool(2)
            pool.map(_worker, range(6))
            # close + join lets workers exit normally; terminate() would kill them.
            pool.close()
            pool.join()
        # Workers leave through os._exit, skipping atexit: their records must have gone
        # out through multiprocessing's own exit hook.
        assert handler.flush(timeout=10)
        assert logwell_receiver.wait_for(7, timeout=10), logwell_receiver.messages()
        messages = logwell_receiver.messages()
        assert messages.count("parent") == 1
        assert sorted(m.split(" from")[0] for m in messages if m.startswith("worker")) == [
            f"worker {n}" for n in range(6)
        ]
    finally:
        log.removeHandler(handler)
