from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python
from test_overflow import unused_port

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


def test_multiprocessing_exit_hook_is_registered_once_however_many_forks(
    logwell_receiver: LogwellReceiver,
) -> None:
    # multiprocessing's after-fork registry is inherited by every child, so one entry
    # serves them all: 20 forks must not leave 20 in the parent, nor arm 20 exit drains in
    # a child. Both registries are private to multiprocessing; counted in a fresh process.
    code = """
import logging, multiprocessing, os, warnings
from multiprocessing import util
from logwell_handler import LogwellHandler, _lifecycle

warnings.simplefilter("ignore", DeprecationWarning)
logging.getLogger("app").addHandler(LogwellHandler(flush_interval=60))

def hooks():
    return sum(type(v) is _lifecycle._ExitHook for v in list(util._afterfork_registry.values()))

def drains(queue):
    finalizers = list(util._finalizer_registry.values())
    queue.put(sum(f._callback is _lifecycle._close_all_at_exit for f in finalizers))

for _ in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
ctx = multiprocessing.get_context("fork")
queue = ctx.SimpleQueue()
child = ctx.Process(target=drains, args=(queue,))
child.start()
child.join()
print(hooks(), queue.get(), child.exitcode)
"""
    proc, _ = run_python(code, env=receiver_env(logwell_receiver))
    assert proc.returncode == 0, proc.stderr
    hooks, drains_in_child, exitcode = proc.stdout.split()
    assert (hooks, drains_in_child, exitcode) == ("1", "1", "0")


def test_gunicorn_preload_flask_workers(logwell_receiver: LogwellReceiver) -> None:
    port = unused_port()
    env = {**os.environ, **receiver_env(logwell_receiver)}
    command = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2"]
    command += ["--bind", f"127.0.0.1:{port}", "--chdir", str(APPS), "gunicorn_app:app"]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as server:
        try:
            wait_until_serving(port)
            with ThreadPoolExecutor(8) as pool:
                pids = list(pool.map(lambda n: get(port, f"/hit/{n}"), range(40)))
            assert len(set(pids)) == 2, "both workers served"
            assert logwell_receiver.wait_for(41, timeout=10)
        finally:
            server.send_signal(signal.SIGTERM)
            _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
    messages = logwell_receiver.messages()
    assert sorted(messages) == sorted(["master loaded"] + [f"request {n}" for n in range(40)])
    for entry in logwell_receiver.entries:
        if entry["message"].startswith("request "):
            n = int(entry["message"].split()[1])
            assert entry["metadata"]["pid"] == int(pids[n]), "logged by the worker that served it"


APPS = Path(__file__).parent / "apps"


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return str(reply.read().decode())


def wait_until_serving(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# A fork done in C, as uWSGI forks its workers: Python's at-fork hooks do not run.
C_FORK = """
import ctypes, logging, os, sys, time
from logwell_handler import LogwellHandler

handler = LogwellHandler(flush_interval=60)
log = logging.getLogger("master")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
log.info("from the master")
pid = ctypes.CDLL(None, use_errno=True).fork()
if pid == 0:
    # Nothing logged here yet: the master's queue is not this worker's to wait for.
    start = time.monotonic()
    empty = handler.flush(timeout=5)
    sys.stdout.write(f"worker had nothing {empty} in {time.monotonic() - start:.2f} s\\n")
    for i in range(5):
        log.info("from the worker %d", i)
    ok = handler.flush(timeout=10)
    sys.stdout.write(f"worker flushed {ok}\\n")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write(f"master flushed {handler.flush(timeout=10)}\\n")
"""


def test_a_fork_done_in_c_gives_the_child_its_own_queue(
    logwell_receiver: LogwellReceiver,
) -> None:
    proc, _ = run_python(C_FORK, env=receiver_env(logwell_receiver))
    assert proc.returncode == 0, proc.stderr
    assert "worker flushed True" in proc.stdout, proc.stdout + proc.stderr
    had_nothing = re.search(r"worker had nothing True in ([0-9.]+) s", proc.stdout)
    assert had_nothing, proc.stdout
    assert float(had_nothing.group(1)) < 2, "at once, not the flush's 5 s"
    assert "master flushed True" in proc.stdout, proc.stdout + proc.stderr
    assert sorted(logwell_receiver.messages()) == sorted(
        ["from the master"] + [f"from the worker {i}" for i in range(5)]
    )


def test_uwsgi_workers_each_ship_their_own_records(logwell_receiver: LogwellReceiver) -> None:
    port = unused_port()
    app = Path(__file__).parent / "apps" / "uwsgi_app.py"
    uwsgi = Path(sys.executable).parent / "uwsgi"
    server = subprocess.Popen(
        [
            str(uwsgi),
            "--master",
            "--processes",
            "2",
            "--http-socket",
            f"127.0.0.1:{port}",
            "--wsgi-file",
            str(app),
            "--disable-logging",
            "--die-on-term",
        ],
        env={**os.environ, **receiver_env(logwell_receiver)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(port)
        answers: set[str] = set()

        def get(_: int) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
                return str(reply.read().decode())

        deadline = time.monotonic() + 20
        with ThreadPoolExecutor(8) as pool:
            while len({a.split()[0] for a in answers}) < 2 and time.monotonic() < deadline:
                answers.update(pool.map(get, range(16)))
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    workers = {a.split()[0] for a in answers}
    assert len(workers) == 2, (answers, err)
    assert all(a.endswith("True") for a in answers), answers
    served = {m.split()[1] for m in logwell_receiver.messages() if m.endswith("served a request")}
    assert served == workers, (served, workers)


FORKS_AFTER_RECORDS = """
import logging, os, sys, warnings
from logwell_handler import Logwell, LogwellHandler

endpoint, key = os.environ["LOGWELL_ENDPOINT"], os.environ["LOGWELL_API_KEY"]
handler = LogwellHandler(key, endpoint, flush_interval=60, max_requests_per_minute=0)
client = Logwell({"api_key": key, "endpoint": endpoint, "flush_interval": 60})
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.info("delivered before the forks")
assert handler.flush(10)
log.info("queued across the forks")  # flush_interval=60: held until a flush
client.info("client queued across the forks")
for n in range(3):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
    if pid == 0:
        log.info("child %d", n)
        os._exit(0 if handler.flush(10) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    # 3.13+ counts threads after the after-fork hooks, which start ours again: there
    # the warning still names it (docs/behaviour.md).
    if sys.version_info < (3, 13):
        assert not caught, [str(w.message) for w in caught]
    log.info("parent after fork %d", n)
assert handler.flush(10) and client.flush(10)["accepted"] == 1
print(handler.stats()["sent"])
"""


def test_forks_after_records_lose_nothing_and_name_no_thread_of_ours_on_3_12(
    logwell_receiver: LogwellReceiver,
) -> None:
    # 3.12+ warns at a fork while other threads run: the shipping threads stop across
    # it, and start again, and nothing they held is lost.
    proc, _ = run_python(
        FORKS_AFTER_RECORDS, env={**receiver_env(logwell_receiver), "PYTHONWARNINGS": "error"}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5"
    assert sorted(logwell_receiver.messages()) == sorted(
        [
            "delivered before the forks",
            "queued across the forks",
            "client queued across the forks",
            *(f"child {n}" for n in range(3)),
            *(f"parent after fork {n}" for n in range(3)),
        ]
    )
