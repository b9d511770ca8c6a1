"""The disk spool: what the server cannot take in time is written down and sent again, by
the same process or the next one, whatever happened in between."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from logwell_handler import ErrorCode, Logwell, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python
from test_overflow import unused_port

KEY = "lw_" + "s" * 32

# Logs `count` records tagged `tag` while the server is down, into a small memory queue
# (so most of them go to the spool because it is full), then dies with SIGKILL once all
# are on disk ("kill") or exits as any program does ("exit").
SPOOLER = textwrap.dedent(
    """
    import json, logging, os, signal, sys, time
    from logwell_handler import LogwellHandler

    count, tag, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    handler = LogwellHandler(
        spool_dir=os.environ["SPOOL_DIR"],
        max_spool_bytes=int(os.environ.get("MAX_SPOOL_BYTES", 256 << 20)),
        max_queue_size=10_000,
        max_retries=0,
        flush_interval=0.2,
        max_requests_per_minute=0,
        shutdown_timeout=5,
        on_error=lambda error: None,
    )
    log = logging.getLogger("spooler")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    for i in range(count):
        log.info("%s %d", tag, i)
    if mode == "kill":
        deadline = time.monotonic() + 60
        while handler.stats()["spooled"] < count and time.monotonic() < deadline:
            time.sleep(0.02)
        print(json.dumps(handler.stats()), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    print(json.dumps(handler.stats()), flush=True)
    """
)

# Sends what SPOOL_DIR holds to the receiver in the environment, until killed.
REPLAYER = textwrap.dedent(
    """
    import os, sys
    from logwell_handler import LogwellHandler

    handler = LogwellHandler(spool_dir=os.environ["SPOOL_DIR"], max_requests_per_minute=0)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


class Outage:
    """A server address that is down until `back()` starts a receiver there: spooled
    entries are meant for one URL and one key, and are sent only there."""

    def __init__(self) -> None:
        self.port = unused_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.receiver: LogwellReceiver | None = None

    def env(self, spool_dir: Path) -> dict[str, str]:
        return {
            "LOGWELL_ENDPOINT": self.endpoint,
            "LOGWELL_API_KEY": KEY,
            "SPOOL_DIR": str(spool_dir),
        }

    def back(self) -> LogwellReceiver:
        self.receiver = LogwellReceiver(api_key=KEY, port=self.port).start()
        return self.receiver

    def spool(self, spool_dir: Path, count: int, tag: str, mode: str, **env: str) -> Any:
        proc, _ = run_python(
            SPOOLER, str(count), tag, mode, env={**self.env(spool_dir), **env}, timeout=120
        )
        return proc

    def replay(self, spool_dir: Path, expected: int) -> dict[str, Any]:
        """Starts a handler on `spool_dir` once the server is back, waits for `expected`
        entries, and returns its stats."""
        receiver = self.receiver or self.back()
        handler = LogwellHandler(
            api_key=KEY, endpoint=self.endpoint, spool_dir=spool_dir, max_requests_per_minute=0
        )
        try:
            assert receiver.wait_for(expected, timeout=120), len(receiver.entries)
        finally:
            # Joins the shipping thread: its counters are final.
            handler.close()
        return dict(handler.stats())

    def received(self) -> Counter[str]:
        assert self.receiver is not None
        return Counter(self.receiver.messages())


@pytest.fixture
def outage() -> Iterator[Outage]:
    o = Outage()
    yield o
    if o.receiver is not None:
        o.receiver.stop()


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Polls `condition` until it holds or `timeout` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def logger_for(handler: logging.Handler, name: str) -> logging.Logger:
    """A logger of its own at INFO, not propagating, with `handler` only."""
    log = logging.getLogger(f"spool.{name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers[:] = [handler]
    return log


def segments(spool_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(spool_dir.glob("*.lws"))}


@pytest.mark.parametrize("mode", ["kill", "exit"])
def test_nothing_logged_in_an_outage_is_lost_across_a_kill_or_an_exit(
    tmp_path: Path, outage: Outage, mode: str
) -> None:
    count = 200_000
    proc = outage.spool(tmp_path, count, "outage", mode)
    if mode == "kill":
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        stats = json.loads(proc.stdout)
        assert stats["spooled"] == count, stats
        assert stats["dropped_overflow"] == 0, stats
    else:
        assert proc.returncode == 0, proc.stderr
    assert segments(tmp_path), "the outage left segments"
    stats = outage.replay(tmp_path, count)
    seen = outage.received()
    assert set(seen) == {f"outage {i}" for i in range(count)}
    # At least once: a crash may resend one request's worth, no more.
    assert sum(seen.values()) - count <= 100
    assert stats["replayed"] == sum(seen.values())
    assert (stats["spool_corrupt"], stats["dropped_spool_full"]) == (0, 0)
    assert segments(tmp_path) == {}, "sent segments are removed"


def test_a_torn_tail_and_a_flipped_byte_cost_only_their_records(
    tmp_path: Path, outage: Outage
) -> None:
    count = 4000
    proc = outage.spool(tmp_path, count, "damaged", "exit", MAX_SPOOL_BYTES=str(1 << 20))
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("*.lws"))
    assert len(files) >= 2, "1 MiB of spool is cut into segments of 128 KiB"
    # A flipped byte inside the first frame's entry of the first segment.
    first = bytearray(files[0].read_bytes())
    first[16 + 12 + 10] ^= 0x20
    files[0].write_bytes(bytes(first))
    # The last segment cut mid-record, as a crash mid-write leaves it.
    last = files[-1].read_bytes()
    files[-1].write_bytes(last[:-7])
    stats = outage.replay(tmp_path, count - 2)
    seen = outage.received()
    assert len(seen) == sum(seen.values()) == count - 2
    assert "damaged 0" not in seen
    assert f"damaged {count - 1}" not in seen
    assert stats["spool_corrupt"] == 2


def wait_for_all(receiver: LogwellReceiver, messages: set[str], timeout: float) -> bool:
    """Waits until every one of `messages` has arrived, however many times."""
    deadline = time.monotonic() + timeout
    while not messages <= set(receiver.messages()):
        left = deadline - time.monotonic()
        if left <= 0 or not receiver.wait_for(len(receiver.messages()) + 1, timeout=left):
            return False
    return True


def test_a_replaying_process_killed_mid_way_resends_at_most_one_request(
    tmp_path: Path, outage: Outage
) -> None:
    count = 20_000
    assert outage.spool(tmp_path, count, "crash", "exit").returncode == 0
    receiver = outage.back()
    receiver.delay = 0.02  # 200 requests: 4 s, of which the kill comes after one
    first = subprocess.Popen(
        [sys.executable, "-c", REPLAYER],
        env={**os.environ, **outage.env(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.wait_for(count // 4, timeout=60)
    finally:
        first.kill()
        first.communicate(timeout=30)
    arrived_before = len(receiver.messages())
    assert arrived_before < count, "killed mid-way"
    handler = LogwellHandler(
        api_key=KEY, endpoint=outage.endpoint, spool_dir=tmp_path, max_requests_per_minute=0
    )
    try:
        assert wait_for_all(receiver, {f"crash {i}" for i in range(count)}, timeout=120)
    finally:
        handler.close()
    seen = outage.received()
    # At least once: the request out at the kill may come again, nothing more.
    assert sum(seen.values()) - count <= 100, sum(seen.values()) - count
    assert segments(tmp_path) == {}


def test_two_processes_replaying_one_directory_send_each_record_once(
    tmp_path: Path, outage: Outage
) -> None:
    writers = 4
    for w in range(writers):
        assert outage.spool(tmp_path, 5000, f"w{w}", "exit").returncode == 0
    receiver = outage.back()
    env = {**os.environ, **outage.env(tmp_path)}
    replayers = [
        subprocess.Popen(
            [sys.executable, "-c", REPLAYER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        assert receiver.wait_for(writers * 5000, timeout=120), len(receiver.entries)
    finally:
        for p in replayers:
            p.communicate("", timeout=30)
    seen = outage.received()
    assert len(seen) == writers * 5000
    assert max(seen.values()) == 1, "no record sent twice"
    assert segments(tmp_path) == {}


def test_past_max_spool_bytes_the_oldest_go_and_are_counted(tmp_path: Path, outage: Outage) -> None:
    count = 30_000
    proc = outage.spool(tmp_path, count, "bounded", "kill", MAX_SPOOL_BYTES=str(1 << 20))
    stats = json.loads(proc.stdout)
    assert stats["spooled"] == count
    dropped = stats["dropped_spool_full"]
    assert dropped > count // 2, stats
    assert sum(segments(tmp_path).values()) <= 1 << 20
    outage.replay(tmp_path, count - dropped)
    seen = outage.received()
    assert len(seen) == sum(seen.values()) == count - dropped
    # The oldest went, the newest stayed. (Not to the record: what the full queue pushes
    # out and what the shipping thread takes from its front are written as they come.)
    assert "bounded 0" not in seen
    assert {f"bounded {i}" for i in range(count - 1000, count)} <= set(seen)


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process may not write in: read-only to the user; for root, who
    may write anywhere, sysfs."""
    if os.geteuid() == 0:
        where = Path("/sys/kernel")
    else:
        tmp_path.chmod(0o555)
        where = tmp_path
    try:
        (where / "probe").mkdir()
    except OSError:
        return where
    (where / "probe").rmdir()
    pytest.fail(f"{where} is writable here (no sysfs mounted?): the test needs a place that is not")


@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_a_spool_dir_that_cannot_be_used_is_reported_once_and_logging_goes_on(
    tmp_path: Path,
    make_handler: MakeHandler,
    logwell_receiver: LogwellReceiver,
    logger: logging.Logger,
    where: str,
) -> None:
    if where == "under a file":
        (tmp_path / "file").write_text("")
        spool_dir = tmp_path / "file" / "spool"
    else:
        spool_dir = unwritable_dir(tmp_path)
    errors: list[LogwellError] = []
    handler = make_handler(spool_dir=spool_dir, on_error=errors.append)
    logger.addHandler(handler)
    try:
        for i in range(3):
            logger.info("goes on %d", i)
        assert handler.flush(5)
    finally:
        tmp_path.chmod(0o755)
    assert logwell_receiver.messages() == [f"goes on {i}" for i in range(3)]
    stats = handler.stats()
    assert (stats["spool_errors"], stats["spooled"], stats["sent"]) == (1, 0, 3)
    assert [e.code for e in errors] == [ErrorCode.SPOOL_ERROR]
    assert str(spool_dir) in errors[0].message


def test_a_forked_child_spools_on_its_own_and_never_touches_its_parents_files(
    tmp_path: Path, outage: Outage
) -> None:
    script = textwrap.dedent(
        """
        import json, logging, os, sys, time
        from logwell_handler import LogwellHandler

        spool = sys.argv[1]
        handler = LogwellHandler(spool_dir=spool, max_retries=0, flush_interval=0.2,
                                 on_error=lambda error: None)
        log = logging.getLogger("fork")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(handler)

        def spooled_all(n):
            deadline = time.monotonic() + 30
            while handler.stats()["spooled"] < n and time.monotonic() < deadline:
                time.sleep(0.02)
            return handler.stats()["spooled"]

        for i in range(500):
            log.info("parent %d", i)
        assert spooled_all(500) == 500
        before = {n: os.path.getsize(os.path.join(spool, n)) for n in os.listdir(spool)}
        pid = os.fork()
        if pid == 0:
            for i in range(500):
                log.info("child %d", i)
            handler.close()
            print(json.dumps({"child": handler.stats()["spooled"]}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        after = {n: os.path.getsize(os.path.join(spool, n)) for n in os.listdir(spool)}
        untouched = all(after.get(n) == size for n, size in before.items())
        for i in range(500, 1000):
            log.info("parent %d", i)
        handler.close()
        print(json.dumps({"parent": handler.stats()["spooled"], "untouched": untouched,
                          "owners": len({n.split(".")[0] for n in after if n.endswith(".lock")})}))
        """
    )
    proc, _ = run_python(script, str(tmp_path), env=outage.env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    child, parent = (json.loads(line) for line in proc.stdout.splitlines())
    assert child == {"child": 500}
    assert parent == {"parent": 1000, "untouched": True, "owners": 2}
    outage.replay(tmp_path, 1500)
    seen = outage.received()
    expected = {f"parent {i}" for i in range(1000)} | {f"child {i}" for i in range(500)}
    assert set(seen) == expected
    assert max(seen.values()) == 1


def test_the_client_spools_too(tmp_path: Path, outage: Outage) -> None:
    client = Logwell(
        api_key=KEY,
        endpoint=outage.endpoint,
        spool_dir=tmp_path,
        max_retries=0,
        on_error=lambda error: None,
    )
    for i in range(100):
        client.info(f"client {i}", {"i": i})
    client.shutdown(timeout=2)
    assert client.stats()["spooled"] == 100
    outage.replay(tmp_path, 100)
    assert outage.receiver is not None
    assert [e["metadata"]["i"] for e in outage.receiver.entries] == list(range(100))


def test_new_records_go_out_while_a_backlog_drains(tmp_path: Path, outage: Outage) -> None:
    backlog = 30_000
    assert outage.spool(tmp_path, backlog, "old", "exit").returncode == 0
    receiver = outage.back()
    # 300 requests of backlog at 20 ms each: about 6 s to drain.
    receiver.delay = 0.02
    handler = LogwellHandler(
        api_key=KEY, endpoint=outage.endpoint, spool_dir=tmp_path, flush_interval=0.5
    )
    log = logger_for(handler, "fresh")
    try:
        assert receiver.wait_for(1000, timeout=30), "the backlog started"
        log.info("new")
        assert receiver.wait_for(backlog + 1, timeout=120)
    finally:
        handler.close()
    messages = receiver.messages()
    assert messages.index("new") < backlog // 2, "the new record waited for the backlog"
    old = Counter(m for m in messages if m != "new")
    assert old == Counter(f"old {i}" for i in range(backlog))


def test_the_example_in_the_docs_ships_and_writes_nothing_while_the_server_is_up(
    tmp_path: Path, logwell_receiver: LogwellReceiver
) -> None:
    page = (Path(__file__).parent.parent / "docs" / "spool.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env={**os.environ, **receiver_env(logwell_receiver)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert logwell_receiver.messages() == ["payment provider timed out"]
    assert (tmp_path / "log-spool").is_dir()
    assert segments(tmp_path / "log-spool") == {}


def test_while_a_failed_request_waits_for_its_retries_what_is_queued_goes_to_disk(
    tmp_path: Path, outage: Outage
) -> None:
    # Ten retries wait about 40 s in all; what is queued behind the request may not.
    handler = LogwellHandler(
        api_key=KEY,
        endpoint=outage.endpoint,
        spool_dir=tmp_path,
        max_retries=10,
        shutdown_timeout=1,
        on_error=lambda error: None,
    )
    log = logger_for(handler, "retrying")
    try:
        for i in range(2000):
            log.info("queued %d", i)
        wait_until(lambda: handler.stats()["spooled"] >= 1900, timeout=30)
        stats = handler.stats()
    finally:
        handler.close()
    # All but the request still being retried (at most 100 entries).
    assert stats["spooled"] >= 1900, stats
    assert stats["retries"] < 10, "still retrying: the spool did not wait for it"


def last_code(handler: LogwellHandler) -> Optional[str]:
    last = handler.stats()["last_error"]
    return None if last is None else last["code"]


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_spool_dir_removed_under_a_running_process_is_made_again(
    tmp_path: Path, outage: Outage, how: str
) -> None:
    spool_dir = tmp_path / "spool"
    errors: list[LogwellError] = []
    handler = LogwellHandler(
        api_key=KEY,
        endpoint=outage.endpoint,
        spool_dir=spool_dir,
        max_queue_size=100,  # a full queue sets entries aside, and they go to disk
        max_retries=0,
        flush_interval=0.1,
        max_requests_per_minute=0,
        on_error=errors.append,
    )
    log = logger_for(handler, how)
    try:
        for i in range(1000):
            log.info("before %d", i)
        assert wait_until(lambda: handler.stats()["spooled"] >= 800, timeout=30)
        # A cleanup script, a tmp reaper; or a redeploy that puts a new directory there.
        # Moved aside first, as the thread may be writing: removed in place, the tree
        # could change under rmtree. The new one is made beside it and moved in at once,
        # so that the thread does not find the place empty in between.
        if how == "replaced":
            (tmp_path / "new").mkdir()
        spool_dir.rename(tmp_path / "gone")
        if how == "replaced":
            (tmp_path / "new").rename(spool_dir)
        shutil.rmtree(tmp_path / "gone")
        for i in range(3000):
            log.info("after %d", i)
        receiver = outage.back()
        after = {f"after {i}" for i in range(3000)}
        assert wait_until(lambda: after <= set(receiver.messages()), timeout=60), len(
            after - set(receiver.messages())
        )
    finally:
        handler.close()
    stats = handler.stats()
    assert stats["queued"] == 0
    # Every record logged ends in exactly one outcome.
    outcomes = (
        stats["sent"]
        + stats["spooled"]
        + stats["dropped_overflow"]
        + stats["dropped_at_close"]
        + stats["failed"]
        + stats["rejected_by_server"]
    )
    assert stats["enqueued"] == outcomes == 4000
    assert stats["dropped_overflow"] == 0, "the spool took all that memory could not"
    assert stats["spool_errors"] == 1
    [spool_error] = [e for e in errors if e.code is ErrorCode.SPOOL_ERROR]
    assert str(spool_dir) in spool_error.message
    assert ("was removed" if how == "removed" else "was replaced") in spool_error.message
    # What was written to the spool before the removal went with it, counted as damage.
    assert stats["spool_corrupt"] >= 1


def test_a_full_spool_is_reported_once_per_run_of_trouble(tmp_path: Path, outage: Outage) -> None:
    # Another live process's files fill the directory (each may drop only its own for
    # room); a record too big for the room left is refused, then written once some of
    # theirs go, then the next one is refused again: one run of trouble, one report.
    max_bytes = 1 << 20
    settings: dict[str, Any] = dict(
        api_key=KEY,
        endpoint=outage.endpoint,
        spool_dir=tmp_path,
        max_spool_bytes=max_bytes,
        max_message_bytes=max_bytes,
        max_retries=0,
        flush_interval=0.1,
        max_requests_per_minute=0,
        shutdown_timeout=1,
    )
    other = LogwellHandler(**settings, on_error=lambda error: None)
    errors: list[LogwellError] = []

    def full_reports() -> int:
        return sum("is full" in error.message for error in errors)

    try:
        other_log = logger_for(other, "full.other")
        for i in range(7):  # one segment each: a segment is an eighth of the bound
            other_log.info("%d %s", i, "o" * 100_000)
        assert wait_until(lambda: other.stats()["spooled"] == 7, timeout=20)
        theirs = sorted(tmp_path.glob("*.lws"))
        assert len(theirs) == 7

        def room() -> int:
            return max_bytes - sum(path.stat().st_size for path in theirs if path.exists())

        handler = LogwellHandler(**settings, on_error=errors.append)
        try:
            log = logger_for(handler, "full.ours")
            log.info("small")
            assert wait_until(lambda: handler.stats()["spooled"] == 1, timeout=20)
            log.info("%s", "a" * (room() + 10_000))
            assert wait_until(lambda: full_reports() == 1, timeout=20), errors
            # The other process sends two of its files: the record waiting in memory fits.
            theirs[0].unlink()
            theirs[1].unlink()
            assert wait_until(lambda: handler.stats()["spooled"] == 2, timeout=20)
            log.info("%s", "b" * (room() + 10_000))
        finally:
            handler.close()
    finally:
        other.close()
    # The last record found no room, at its write and at close.
    assert handler.stats()["dropped_at_close"] == 1
    assert full_reports() == 1, [error.message for error in errors]


def test_after_a_disk_fault_the_spool_is_replayed_as_soon_as_the_server_is_back(
    tmp_path: Path, outage: Outage
) -> None:
    parent = tmp_path / "parent"
    spool_dir = parent / "spool"
    assert outage.spool(spool_dir, 500, "old", "exit").returncode == 0
    # The directory cannot be used when the next process starts: a disk fault, after
    # which the spool rests a minute before it is tried again.
    aside = tmp_path / "aside"
    parent.rename(aside)
    parent.write_text("")
    handler = LogwellHandler(
        api_key=KEY,
        endpoint=outage.endpoint,
        spool_dir=spool_dir,
        max_retries=0,
        flush_interval=0.1,
        max_requests_per_minute=0,
        on_error=lambda error: None,
    )
    log = logger_for(handler, "fault")
    try:
        assert wait_until(lambda: handler.stats()["spool_errors"] == 1, timeout=10)
        log.info("fresh")
        # The server is down too, and the handler has seen it.
        assert wait_until(lambda: last_code(handler) == "NETWORK_ERROR", timeout=10)
        parent.unlink()
        aside.rename(parent)
        receiver = outage.back()
        # Well within the minute the spool would otherwise rest.
        assert receiver.wait_for(501, timeout=20), len(receiver.entries)
    finally:
        handler.close()
    assert outage.received() == Counter(["fresh", *(f"old {i}" for i in range(500))])
