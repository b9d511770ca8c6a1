"""A process that logs and exits, with or without close(), whatever the server does."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import run_python
from test_overflow import unused_port

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, threading
    from logwell_handler import LogwellHandler

    def on_error(error):
        sys.stderr.write(f"on_error: {error.code.value}\\n")

    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    log.addHandler(LogwellHandler(
        shutdown_timeout=float(os.environ.get("SHUTDOWN", "5")),
        max_retries=int(os.environ.get("RETRIES", "3")),
        on_error=on_error if "--on-error" in sys.argv else None,
    ))
    for i in range(int(sys.argv[1])):
        log.info("exit-%d", i)
    if "--thread-exit" in sys.argv:
        def leave():
            log.info("from a thread")
            sys.exit(3)  # ends only this thread
        worker = threading.Thread(target=leave)
        worker.start()
        worker.join()
    if "--daemon" in sys.argv:
        def chatter():
            while True:
                log.info("daemon")
        threading.Thread(target=chatter, daemon=True).start()
    if "--os-exit" in sys.argv:
        os._exit(0)
    # return from main without closing anything
    """
)


def run(
    endpoint: str, key: str, *args: str, shutdown: float = 5.0, retries: int = 3
) -> tuple[int, float, str]:
    env = {
        "LOGWELL_ENDPOINT": endpoint,
        "LOGWELL_API_KEY": key,
        "SHUTDOWN": str(shutdown),
        "RETRIES": str(retries),
    }
    proc, elapsed = run_python(SCRIPT, *args, env=env)
    return proc.returncode, elapsed, proc.stderr


def test_exit_without_close_delivers_everything(logwell_receiver: LogwellReceiver) -> None:
    code, elapsed, stderr = run(logwell_receiver.endpoint, logwell_receiver.api_key, "500")
    assert code == 0, stderr
    assert elapsed < 5, "exit does not wait for the flush interval"
    assert len(logwell_receiver.entries) == 500
    assert sorted(logwell_receiver.messages()) == sorted(f"exit-{i}" for i in range(500))


def test_exit_with_server_down_is_bounded_by_shutdown_timeout() -> None:
    # 100 retries would back off for minutes: the deadline cuts the sleeps short.
    code, elapsed, stderr = run(
        f"http://127.0.0.1:{unused_port()}", "lw_" + "k" * 32, "50", shutdown=1.0, retries=100
    )
    assert code == 0, stderr
    assert elapsed < 5, elapsed
    assert "could not be delivered" in stderr or "NETWORK_ERROR" in stderr


def test_exit_with_server_down_and_on_error_set() -> None:
    code, elapsed, stderr = run(
        f"http://127.0.0.1:{unused_port()}", "lw_" + "k" * 32, "50", "--on-error", shutdown=1.0
    )
    assert code == 0, stderr
    assert elapsed < 5, elapsed
    assert "on_error: NETWORK_ERROR" in stderr
    assert "Traceback" not in stderr, stderr


def test_exit_with_a_slow_server_delivers_within_the_deadline(
    logwell_receiver: LogwellReceiver,
) -> None:
    logwell_receiver.delay = 0.5
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "120", shutdown=5.0
    )
    assert code == 0, stderr
    assert elapsed < 8, elapsed
    assert len(logwell_receiver.entries) == 120


def test_exit_while_rate_limited_does_not_wait_out_a_long_retry_after(
    logwell_receiver: LogwellReceiver,
) -> None:
    logwell_receiver.fail_next(1_000, status=429, retry_after=60)
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "10", shutdown=1.0
    )
    assert code == 0, stderr
    assert elapsed < 5, elapsed
    assert "10 log entries could not be delivered" in stderr
    statuses = logwell_receiver.statuses()
    # Asked again at the pacer's pace, less and less often: a handful, not a storm.
    assert set(statuses) == {429}, statuses
    assert len(statuses) <= 20, statuses


def test_sys_exit_in_a_worker_thread(logwell_receiver: LogwellReceiver) -> None:
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "5", "--thread-exit"
    )
    assert code == 0, stderr
    assert elapsed < 5, elapsed
    assert sorted(logwell_receiver.messages()) == sorted(
        [f"exit-{i}" for i in range(5)] + ["from a thread"]
    )


def test_exit_with_server_that_never_answers_is_bounded(logwell_receiver: LogwellReceiver) -> None:
    logwell_receiver.delay = 30
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "10", shutdown=1.0
    )
    assert code == 0, stderr
    assert elapsed < 6, elapsed
    # Said on stderr even though a network error (the request cut at the deadline) was
    # said before it: a loss at exit is the last word.
    assert "10 log entries could not be delivered before the shutdown deadline" in stderr


def test_exit_while_a_daemon_thread_is_logging(logwell_receiver: LogwellReceiver) -> None:
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "10", "--daemon", shutdown=2.0
    )
    assert code == 0, stderr
    assert elapsed < 8, elapsed
    assert sorted(m for m in logwell_receiver.messages() if m.startswith("exit-")) == sorted(
        f"exit-{i}" for i in range(10)
    )


@pytest.mark.skipif(not hasattr(os, "_exit"), reason="os._exit is POSIX and Windows only")
def test_os_exit_does_not_hang(logwell_receiver: LogwellReceiver) -> None:
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "10", "--os-exit"
    )
    assert code == 0, stderr
    assert elapsed < 5


# One handler per endpoint given, each with its own records; the process just returns,
# having printed when (CLOCK_MONOTONIC, one clock for all processes) its script ended.
HANDLERS = textwrap.dedent(
    """
    import json, logging, sys, time
    from logwell_handler import LogwellHandler

    key, shutdown, *endpoints = sys.argv[1:]
    for n, endpoint in enumerate(endpoints):
        log = logging.getLogger(f"app{n}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(LogwellHandler(
            api_key=key, endpoint=endpoint, shutdown_timeout=float(shutdown)
        ))
        for i in range(10):
            log.info("handler %d record %d", n, i)
    print(time.monotonic())
    """
)


@pytest.mark.parametrize(("shutdown", "handlers"), [(1.0, 1), (3.0, 1), (1.0, 3)])
def test_exit_with_a_server_that_never_answers_takes_one_shutdown_timeout(
    logwell_receiver: LogwellReceiver, shutdown: float, handlers: int
) -> None:
    # The exit drain waits once; logging.shutdown's flush() and close() that follow find
    # the handlers closed and return at once.
    logwell_receiver.delay = 30
    endpoints = [logwell_receiver.endpoint] * handlers
    proc, _ = run_python(HANDLERS, logwell_receiver.api_key, str(shutdown), *endpoints, env={})
    exit_took = time.monotonic() - float(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    # From the script's end to the process's: the interpreter's start-up left out.
    assert shutdown - 0.1 < exit_took < shutdown + 1.5, exit_took


def test_a_stalled_endpoint_does_not_starve_the_others_at_exit(
    logwell_receiver: LogwellReceiver,
) -> None:
    with LogwellReceiver(api_key=logwell_receiver.api_key) as stalled:
        stalled.delay = 30
        proc, _ = run_python(
            HANDLERS,
            logwell_receiver.api_key,
            "2",
            stalled.endpoint,
            logwell_receiver.endpoint,
            env={},
        )
    assert proc.returncode == 0, proc.stderr
    assert sorted(logwell_receiver.messages()) == sorted(f"handler 1 record {i}" for i in range(10))
