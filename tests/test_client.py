"""Logwell: the official SDK's API on the same core as the handler."""

from __future__ import annotations

import inspect
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from logwell_handler import ErrorCode, Logwell, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver


@pytest.fixture
def client(logwell_receiver: LogwellReceiver) -> Iterator[Logwell]:
    c = Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        service="shop",
        flush_interval=60,  # sent by flush(), which answers for all of it
    )
    yield c
    c.shutdown()


def test_each_level_method(client: Logwell, logwell_receiver: LogwellReceiver) -> None:
    client.debug("d")
    client.info("i", {"k": 1})
    client.warn("w")
    client.error("e")
    client.fatal("f")
    response = client.flush(timeout=10)
    assert response == {"accepted": 5}
    got = [(e["level"], e["message"], e["service"]) for e in logwell_receiver.entries]
    assert got == [(lv, lv[0], "shop") for lv in ("debug", "info", "warn", "error", "fatal")]
    assert logwell_receiver.entries[1]["metadata"] == {"k": 1}
    assert "sourceFile" not in logwell_receiver.entries[0], "off unless asked for"


def test_flush_with_nothing_queued_returns_none(client: Logwell) -> None:
    assert client.flush(timeout=1) is None


def test_log_with_every_field(client: Logwell, logwell_receiver: LogwellReceiver) -> None:
    client.log(
        {
            "level": "warn",
            "message": "explicit",
            "metadata": {"a": [1, 2]},
            "service": "billing",
            "timestamp": "2026-01-01T00:00:00Z",
            "sourceFile": "app/models.py",
            "lineNumber": 42,
        }
    )
    assert client.flush(timeout=10) == {"accepted": 1}
    (entry,) = logwell_receiver.entries
    assert entry["timestamp"] == "2026-01-01T00:00:00Z"
    assert entry["service"] == "billing"
    assert entry["metadata"] == {"a": [1, 2]}
    assert (entry["sourceFile"], entry["lineNumber"]) == ("app/models.py", 42)


def test_child_metadata_merges_and_call_wins(
    client: Logwell, logwell_receiver: LogwellReceiver
) -> None:
    parent = client.child({"tenant": "t1", "shared": "parent"})
    child = parent.child({"request_id": "r-1", "shared": "child"}, service="shop-db")
    child.info("q", {"ms": 12, "request_id": "call"})
    parent.info("p")
    assert client.flush(timeout=10) == {"accepted": 2}
    by_message = {e["message"]: e for e in logwell_receiver.entries}
    assert by_message["q"]["metadata"] == {
        "tenant": "t1",
        "shared": "child",
        "request_id": "call",
        "ms": 12,
    }
    assert by_message["q"]["service"] == "shop-db"
    assert by_message["p"]["metadata"] == {"tenant": "t1", "shared": "parent"}
    assert by_message["p"]["service"] == "shop"
    assert client.stats()["sent"] == 2, "children share the parent's queue and counters"


def test_source_location_is_the_callers_line(logwell_receiver: LogwellReceiver) -> None:
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        capture_source_location=True,
    ) as client:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        client.info("here")
        client.child({"x": 1}).log({"level": "info", "message": "there"})
        client.flush(timeout=10)
    here, there = logwell_receiver.entries
    assert here["sourceFile"] == os.path.relpath(__file__)
    assert here["lineNumber"] == line
    assert there["lineNumber"] == line + 1


def test_official_sdk_dict_form(logwell_receiver: LogwellReceiver) -> None:
    client = Logwell(
        {
            "api_key": logwell_receiver.api_key,
            "endpoint": logwell_receiver.endpoint,
            "service": "from-dict",
            "batch_size": 10,
        }
    )
    client.info("dict config")
    assert client.flush(timeout=10) == {"accepted": 1}
    client.shutdown()
    assert logwell_receiver.entries[0]["service"] == "from-dict"
    with pytest.raises(LogwellError, match="unknown key") as info:
        Logwell({"api_key": logwell_receiver.api_key, "endpoint": "http://x", "apiKey": "y"})
    assert info.value.code is ErrorCode.INVALID_CONFIG


SOURCE = {"level": "info", "message": "x", "sourceFile": "app.py"}


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda c: c.log({"level": "trace", "message": "x"}), "level must be one of"),
        (lambda c: c.log({"level": "WARN", "message": "x"}), "level must be one of"),
        (lambda c: c.info("   "), "message must be a non-empty string"),
        (lambda c: c.info("x", ["not", "a", "dict"]), "metadata must be a dict"),
        (lambda c: c.log("not a dict"), "entry must be a dict"),
        (lambda c: c.child(["x"]), "metadata must be a dict"),
        (lambda c: c.log({"level": "info", "message": "x", "timestamp": 5}), "timestamp"),
        (lambda c: c.log({**SOURCE, "lineNumber": "x"}), "lineNumber must be .* got str"),
        (lambda c: c.log({**SOURCE, "lineNumber": 1.5}), "lineNumber must be .* got float"),
        (lambda c: c.log({**SOURCE, "lineNumber": True}), "lineNumber must be .* got True"),
        (lambda c: c.log({**SOURCE, "lineNumber": -1}), "lineNumber must be .* got -1"),
        (lambda c: c.log({**SOURCE, "lineNumber": 2**64}), "lineNumber must be a non-neg"),
        (lambda c: c.log({"level": "info", "message": "x", "lineNumber": "7"}), "lineNumber"),
    ],
)
def test_invalid_calls_raise_and_leave_the_queue_alone(
    client: Logwell, logwell_receiver: LogwellReceiver, call: Any, problem: str
) -> None:
    client.info("queued before")
    with pytest.raises(LogwellError, match=problem) as info:
        call(client)
    assert info.value.code is ErrorCode.VALIDATION_ERROR
    assert client.flush(timeout=10) == {"accepted": 1}
    assert logwell_receiver.messages() == ["queued before"]


def test_flush_reports_rejections(client: Logwell, logwell_receiver: LogwellReceiver) -> None:
    client.info("a")
    client.info("b")
    logwell_receiver.fail_next(
        1, status=200, body={"accepted": 1, "rejected": 1, "errors": ["Entry at index 1: no"]}
    )
    response = client.flush(timeout=10)
    assert response is not None
    assert response["accepted"] == 1
    assert response["rejected"] == 1
    assert "Entry at index 1: no" in response["errors"][0]


def test_queue_size_and_logging_after_shutdown(logwell_receiver: LogwellReceiver) -> None:
    client = Logwell(
        api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint, flush_interval=60
    )
    client.info("one")
    client.info("two")
    assert client.queue_size == 2
    client.shutdown()
    assert client.queue_size == 0
    client.info("after shutdown")  # ignored, never raised
    client.child().warn("child after shutdown")
    client.shutdown()  # idempotent
    stats = client.stats()
    assert stats["sent"] == 2
    assert stats["ignored_after_close"] == 2
    assert logwell_receiver.messages() == ["one", "two"]


def test_shutdown_raises_with_the_undelivered_count_when_the_server_is_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Logwell(
        api_key="lw_" + "k" * 32, endpoint=f"http://127.0.0.1:{port}", on_error=lambda e: None
    )
    for i in range(7):
        client.info(f"m{i}")
    with pytest.raises(LogwellError, match="7 log entries could not be delivered") as info:
        client.shutdown(timeout=0.5)
    assert info.value.code is ErrorCode.NETWORK_ERROR


def test_handler_and_client_share_one_queue(
    client: Logwell, logwell_receiver: LogwellReceiver
) -> None:
    handler = LogwellHandler(client=client, metadata={"via": "logging"})
    log = logging.getLogger("shared.queue")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        client.info("from the client")
        log.info("from logging", extra={"k": "v"})
        assert client.flush(timeout=10) == {"accepted": 2}
        (request,) = [r for r in logwell_receiver.requests if r.entries]
        assert request.entries == 2, "one request carries both"
        by_message = {e["message"]: e for e in logwell_receiver.entries}
        assert by_message["from logging"]["metadata"] == {
            "via": "logging",
            "k": "v",
            "logger": "shared.queue",
        }
        assert by_message["from logging"]["service"] == "shop"
        assert handler.stats() == client.stats()
    finally:
        log.removeHandler(handler)
        handler.close()
    client.info("client still open after the handler closed")
    assert client.flush(timeout=10) == {"accepted": 1}


def test_handler_with_client_refuses_its_own_connection_settings(client: Logwell) -> None:
    with pytest.raises(LogwellError, match="Invalid api_key: cannot be given with client="):
        LogwellHandler(api_key="lw_" + "k" * 32, client=client)


def test_flush_answers_in_the_servers_words_summed_over_its_requests(
    logwell_receiver: LogwellReceiver,
) -> None:
    # The 100th entry starts a request of 100, which the server holds for a second:
    # the other 50 and the flush come meanwhile, and the flush waits for both requests.
    logwell_receiver.fail_next(1, status=200, body={"accepted": 100, "rejected": 0}, delay=1)
    logwell_receiver.fail_next(
        1, status=200, body={"accepted": 49, "rejected": 1, "errors": ["Entry at index 3: bad"]}
    )
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        batch_size=100,
        flush_interval=60,
    ) as client:
        for i in range(150):
            client.info(f"m{i}")
        assert client.flush(timeout=10) == {
            "accepted": 149,
            "rejected": 1,
            "errors": ["Entry at index 3: bad"],
        }


def test_flush_adds_no_key_the_server_did_not_send(
    client: Logwell, logwell_receiver: LogwellReceiver
) -> None:
    for i in range(3):
        client.info(f"m{i}")
    logwell_receiver.fail_next(1, status=200, body={"accepted": 1})
    assert client.flush(timeout=10) == {"accepted": 1}
    assert client.stats()["rejected_by_server"] == 2, "what was not accepted is still counted"


@pytest.mark.parametrize("owner", ["client", "handler"])
def test_a_flush_returns_as_soon_as_the_retries_are_spent(
    logwell_receiver: LogwellReceiver, owner: str
) -> None:
    settings: dict[str, Any] = dict(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        max_retries=1,
        flush_interval=60,
    )
    logwell_receiver.fail_next(1000, status=503)
    start = time.monotonic()
    if owner == "client":
        client = Logwell(**settings)
        client.info("never taken")
        assert client.flush(timeout=30) is None, "no request was answered"
        assert client.stats()["queued"] == 1, "kept for the next try"
        elapsed = time.monotonic() - start
        with pytest.raises(LogwellError):
            client.shutdown(timeout=0)
    else:
        handler = LogwellHandler(**settings)
        handler.handle(logging.makeLogRecord({"msg": "never taken"}))
        assert handler.flush(timeout=30) is False
        elapsed = time.monotonic() - start
        handler.close()
    assert elapsed < 10, f"{elapsed:.1f} s: waited for a queue that could not drain"


def test_a_flush_returns_at_once_while_the_server_asks_to_wait(
    logwell_receiver: LogwellReceiver,
) -> None:
    client = Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        max_requests_per_minute=0,  # so the server's Retry-After is what holds us
        flush_interval=60,
    )
    try:
        logwell_receiver.fail_next(1, status=429, retry_after=60)
        client.info("held")
        start = time.monotonic()
        assert client.flush(timeout=30) is None
        assert time.monotonic() - start < 10
        assert client.stats()["rate_limited_waits"] == 1
    finally:
        with pytest.raises(LogwellError):
            client.shutdown(timeout=0)


def test_a_flush_waits_out_a_retry_after_that_ends_before_its_deadline(
    logwell_receiver: LogwellReceiver,
) -> None:
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        max_requests_per_minute=0,
        flush_interval=60,
    ) as client:
        logwell_receiver.fail_next(1, status=429, retry_after=1)
        client.info("held a second")
        assert client.flush(timeout=10) == {"accepted": 1}
        assert logwell_receiver.statuses() == [429, 200]
