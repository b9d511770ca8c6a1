"""A process that logs and exits, with or without close(), whatever the server does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from logwell_handler.testing import LogwellReceiver

from test_overflow import unused_port

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, threading
    from logwell_handler import LogwellHandler

    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    log.addHandler(LogwellHandler(shutdown_timeout=float(os.environ.get("SHUTDOWN", "5"))))
    for i in range(int(sys.argv[1])):
        log.info("exit-%d", i)
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


def run(endpoint: str, key: str, *args: str, shutdown: float = 5.0) -> tuple[int, float, str]:
    env = {
        **os.environ,
        "LOGWELL_ENDPOINT": endpoint,
        "LOGWELL_API_KEY": key,
        "SHUTDOWN": str(shutdown),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, time.monotonic() - start, proc.stderr


def test_exit_without_close_delivers_everything(logwell_receiver: LogwellReceiver) -> None:
    code, elapsed, stderr = run(logwell_receiver.endpoint, logwell_receiver.api_key, "500")
    assert code == 0, stderr
    assert elapsed < 5, "exit does not wait for the flush interval"
    assert len(logwell_receiver.entries) == 500
    assert sorted(logwell_receiver.messages()) == sorted(f"exit-{i}" for i in range(500))


def test_exit_with_server_down_is_bounded_by_shutdown_timeout() -> None:
    code, elapsed, stderr = run(
        f"http://127.0.0.1:{unused_port()}", "lw_" + "k" * 32, "50", shutdown=1.0
    )
    assert code == 0, stderr
    assert elapsed < 5, elapsed
    assert "could not be delivered" in stderr or "NETWORK_ERROR" in stderr


def test_exit_with_server_that_never_answers_is_bounded(logwell_receiver: LogwellReceiver) -> None:
    logwell_receiver.delay = 30
    code, elapsed, stderr = run(
        logwell_receiver.endpoint, logwell_receiver.api_key, "10", shutdown=1.0
    )
    assert code == 0, stderr
    assert elapsed < 6, elapsed


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
