"""Log storms: when the queue must drop, it drops the least important records first;
with `storm_limit`, one call site cannot flood the queue at all."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from logwell_handler import Logwell, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_a_debug_storm_costs_no_error_record(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # The real server's limit: 600 requests at once, then 10 a second.
    logwell_receiver.rate_limit_per_minute = 600
    handler = make_handler(max_queue_size=2_000, flush_interval=0.5)
    logger.addHandler(handler)
    for i in range(1_000):
        for j in range(200):
            logger.debug("cache miss %d", j)  # one hot line: 200 000 records
        logger.error("payment %d failed", i)  # other lines
    assert handler.flush(timeout=120)
    stats = handler.stats()
    errors = [e["message"] for e in logwell_receiver.entries if e["level"] == "error"]
    assert errors == [f"payment {i} failed" for i in range(1_000)], "every one, in order"
    by_level = stats["dropped_by_level"]
    assert by_level["debug"] > 0
    assert by_level["info"] == by_level["warn"] == by_level["error"] == by_level["fatal"] == 0
    assert stats["dropped_overflow"] == by_level["debug"]
    debug = sum(e["level"] == "debug" for e in logwell_receiver.entries)
    assert debug + by_level["debug"] == 200_000, "each debug record arrived or was counted"


def _record(lineno: int, msg: str, created: float, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("shop.db", logging.ERROR, __file__, lineno, msg, args, None)
    record.created = created  # the guard's clock is the records' own
    return record


def test_the_storm_guard_keeps_a_storm_to_its_limit_and_summarises_the_rest(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(storm_limit=100, max_queue_size=1_000_000)
    start = time.time()
    logged = 0
    for i in range(250_000):  # 10 000 a second from one line for 25 s
        handler.handle(_record(10, "db down: %s", start + i / 10_000, "timeout"))
        logged += 1
        if i % 10_000 == 0:  # another line, once a second
            handler.handle(_record(20, "heartbeat", start + i / 10_000))
    assert handler.flush(timeout=60)
    storm = [e for e in logwell_receiver.entries if e["lineNumber"] == 10]
    summaries = [e for e in storm if "storm" in e["metadata"]]
    passed = [e for e in storm if "storm" not in e["metadata"]]
    # The burst (100), then 100 a second for 25 s.
    assert 2_500 <= len(passed) <= 2_700, len(passed)
    # One summary per 10 s window: 0-10 s, 10-20 s, and the rest at the flush.
    assert len(summaries) == 3
    counted = sum(s["metadata"]["storm"]["suppressed"] for s in summaries)
    assert len(passed) + counted == logged, "every record went out or was counted, once"
    for summary in summaries:
        info = summary["metadata"]["storm"]
        assert summary["message"] == "db down: timeout", "grouped with the incident"
        assert (summary["level"], summary["sourceFile"]) == ("error", passed[0]["sourceFile"])
        assert info["first"] < info["last"]
        assert info["window_seconds"] == 10
    heartbeats = [e for e in logwell_receiver.entries if e["lineNumber"] == 20]
    assert len(heartbeats) == 25, "a slow call site is untouched"
    stats = handler.stats()
    assert stats["storm_suppressed"] == counted
    assert stats["storm_summaries"] == 3


def test_without_a_storm_limit_nothing_is_held_back(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    start = time.time()
    for i in range(5_000):
        handler.handle(_record(10, "db down", start + i / 10_000))
    assert handler.flush(timeout=60)
    assert len(logwell_receiver.entries) == 5_000
    assert handler.stats()["storm_suppressed"] == 0


def test_the_storm_limit_is_refused_out_of_range_and_with_a_client(
    logwell_receiver: LogwellReceiver,
) -> None:
    settings: dict[str, Any] = {
        "api_key": logwell_receiver.api_key,
        "endpoint": logwell_receiver.endpoint,
    }
    with pytest.raises(LogwellError, match="Invalid storm_limit: must be an integer from 0"):
        LogwellHandler(**settings, storm_limit=-1)
    with Logwell(**settings) as client, pytest.raises(LogwellError, match="storm_limit"):
        LogwellHandler(client=client, storm_limit=10)


def test_the_client_has_a_storm_guard_keyed_by_its_call_site(
    logwell_receiver: LogwellReceiver,
) -> None:
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        storm_limit=50,
        max_queue_size=100_000,
    ) as client:
        for _ in range(20_000):
            client.error("db down", {"attempt": 1})  # one call site, in a hot loop
        for _ in range(20):
            client.error("db down", {"attempt": 2})  # the same words, another line
        assert client.flush(timeout=60) is not None
        stats = client.stats()
    hot = [e for e in logwell_receiver.entries if e["metadata"]["attempt"] == 1]
    summaries = [e for e in hot if "storm" in e["metadata"]]
    passed = [e for e in hot if "storm" not in e["metadata"]]
    assert len(summaries) == 1, "one window, released by the flush"
    assert 50 <= len(passed) < 20_000
    assert len(passed) + summaries[0]["metadata"]["storm"]["suppressed"] == 20_000
    other = [e for e in logwell_receiver.entries if e["metadata"]["attempt"] == 2]
    assert len(other) == 20, "another call site has its own allowance"
    assert stats["storm_summaries"] == 1


def test_a_bad_client_call_is_refused_every_time_never_held_back(
    logwell_receiver: LogwellReceiver,
) -> None:
    client = Logwell(
        api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint, storm_limit=1
    )
    for _ in range(4):
        with pytest.raises(LogwellError, match="level must be one of"):
            client.log({"level": "warning", "message": "x"})  # type: ignore[typeddict-item]
        with pytest.raises(LogwellError, match="non-empty"):
            client.info("   ")
    client.shutdown()
    for _ in range(5):
        client.error("after shutdown")
    stats = client.stats()
    assert stats["storm_suppressed"] == 0
    assert stats["ignored_after_close"] == 5


def test_the_clients_flush_sends_the_summary_even_with_nothing_else_queued(
    logwell_receiver: LogwellReceiver,
) -> None:
    with Logwell(
        api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint, storm_limit=1
    ) as client:
        for _ in range(10):
            client.warn("flapping")
            if not logwell_receiver.entries:
                assert client.flush(timeout=10) == {"accepted": 1}  # the first
        # Nothing queued: the other nine wait in a summary, which this flush sends.
        assert client.flush(timeout=10) == {"accepted": 1}
    (first, summary) = logwell_receiver.entries
    assert "storm" not in first.get("metadata", {})
    assert summary["metadata"]["storm"]["suppressed"] == 9


def test_a_summary_reads_as_the_records_it_stands_for(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    from logwell_handler import log_context

    handler = make_handler(storm_limit=1, use_formatter=True)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    with log_context(request_id="r-9"):
        for i in range(5):
            logger.warning("retry %d", i, extra={"job": "sync"})
    assert handler.flush(timeout=10)
    first, summary = logwell_receiver.entries
    assert first["message"] == "[WARNING] retry 0"
    assert summary["message"] == "[WARNING] retry 4", "the formatter's, as the records'"
    assert summary["metadata"]["request_id"] == "r-9"
    assert summary["metadata"]["job"] == "sync"
    assert summary["metadata"]["storm"]["suppressed"] == 4


def test_a_record_with_no_real_time_goes_unguarded(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(storm_limit=1)
    for created in (-5.0, 0.0, float("nan"), -5.0):
        handler.handle(_record(30, "odd clock", created))
    assert handler.flush(timeout=10)
    assert len(logwell_receiver.entries) == 4
    assert handler.stats()["storm_suppressed"] == 0
