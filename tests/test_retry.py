from __future__ import annotations

import logging

from logwell_handler import ErrorCode, LogwellError
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, last_error


def test_retries_through_two_500s_without_loss(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    # flush() sends: no tick splits the records into two requests.
    handler = make_handler(on_error=errors.append, flush_interval=60)
    logger.addHandler(handler)
    logwell_receiver.fail_next(2, status=500)
    for i in range(10):
        logger.info("m%d", i)
    assert handler.flush(timeout=10)
    assert sorted(logwell_receiver.messages()) == sorted(f"m{i}" for i in range(10))
    stats = handler.stats()
    assert stats["retries"] == 2
    assert stats["sent"] == 10
    assert logwell_receiver.statuses() == [500, 500, 200]
    assert errors == [], "a retry that succeeds is not an error"


def test_429_with_a_budget_known_waits_one_token_not_retry_after(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # Logwell says `Retry-After: 60` to every 429; the pacer's own model says when.
    handler = make_handler()
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=429, retry_after=60)
    logger.info("rate limited once")
    assert handler.flush(timeout=10)
    first, second = logwell_receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at < 5, "not the 60 s asked"
    stats = handler.stats()
    assert (stats["retries"], stats["rate_limited_waits"]) == (0, 1)
    assert stats["rate_limited_wait_ms"] == 60_000, "what the server asked, counted"


def test_429_with_retry_after_is_waited_out_when_no_budget_is_known(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(max_requests_per_minute=0)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=429, retry_after=1)
    logger.info("rate limited once")
    assert handler.flush(timeout=10)
    first, second = logwell_receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95, "Retry-After honoured"
    assert logwell_receiver.messages() == ["rate limited once"]
    stats = handler.stats()
    assert (stats["retries"], stats["rate_limited_waits"]) == (0, 1)
    assert stats["rate_limited_wait_ms"] == 1000


def test_a_batch_failing_all_retries_stays_queued_for_the_next_flush(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    handler = make_handler(max_retries=1, flush_interval=60, on_error=errors.append)
    logger.addHandler(handler)
    logwell_receiver.fail_next(2, status=503)
    logger.info("survives")
    assert handler.flush(timeout=3) is False
    assert [e.code for e in errors] == [ErrorCode.SERVER_ERROR]
    assert errors[0].status_code == 503
    assert errors[0].retryable
    assert handler.flush(timeout=10) is True
    assert logwell_receiver.messages() == ["survives"]


def test_401_is_counted_as_failed_and_reported(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    handler = make_handler(api_key="lw_" + "x" * 32, on_error=errors.append)
    logger.addHandler(handler)
    logger.info("a")
    logger.info("b")
    assert handler.flush(timeout=10), "refused entries are resolved, not pending"
    stats = handler.stats()
    assert (stats["sent"], stats["failed"], stats["retries"]) == (0, 2, 0)
    assert len(errors) == 1
    assert errors[0].code is ErrorCode.UNAUTHORIZED
    assert errors[0].status_code == 401
    assert not errors[0].retryable
    assert "Invalid API key" in str(errors[0])
    assert "x" * 32 not in str(errors[0])
    assert last_error(stats)["code"] == "UNAUTHORIZED"
    assert "x" * 32 not in str(stats["last_error"])


def test_partial_rejection_in_a_200_is_counted(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    handler = make_handler(on_error=errors.append, flush_interval=60)
    logger.addHandler(handler)
    logger.info("fine")
    assert handler.flush(timeout=10)
    # The next reply accepts one entry of two and refuses the other, as the server does.
    logwell_receiver.fail_next(
        1, status=200, body={"accepted": 1, "rejected": 1, "errors": ["Entry at index 1: nope"]}
    )
    logger.info("also fine")
    logger.info("refused")
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert stats["rejected_by_server"] == 1
    assert stats["failed"] == 0
    assert stats["sent"] == 2
    assert [e.code for e in errors] == [ErrorCode.VALIDATION_ERROR]
    assert "Entry at index 1: nope" in str(errors[0])


def test_without_on_error_the_first_error_of_a_kind_goes_to_stderr(
    make_handler: MakeHandler,
    logger: logging.Logger,
    logwell_receiver: LogwellReceiver,
    capfd: object,
) -> None:
    handler = make_handler(api_key="lw_" + "y" * 32)
    logger.addHandler(handler)
    for _ in range(3):
        logger.info("refused")
        assert handler.flush(timeout=10)
    # flush() returns once the entries are counted, which may be before the shipping
    # thread reported them; close() joins that thread, so every report is written.
    handler.close()
    err = capfd.readouterr().err  # type: ignore[attr-defined]
    assert err.count("UNAUTHORIZED") == 1
    assert "y" * 32 not in err


def test_a_2xx_reply_that_is_not_the_ingest_reply_counts_as_sent_and_is_reported(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    handler = make_handler(on_error=errors.append)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=200, body={"ok": True})
    logger.info("taken, but the reply is odd")
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert (stats["sent"], stats["retries"], stats["batches"]) == (1, 0, 1)
    assert stats["bytes_sent"] > len("taken, but the reply is odd")
    assert [e.code for e in errors] == [ErrorCode.SERVER_ERROR]
    assert "unreadable reply" in str(errors[0])


def test_records_after_close_are_ignored_and_counted(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    logger.addHandler(handler)
    logger.info("before")
    handler.close()
    logger.info("after")
    stats = handler.stats()
    assert (stats["sent"], stats["ignored_after_close"], stats["queued"]) == (1, 1, 0)
    assert logwell_receiver.messages() == ["before"]


def test_a_reply_that_is_not_json_is_quoted_short_on_one_line(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # A proxy's page for an endpoint with a wrong path prefix.
    page = "<!doctype html>\n<html><head><title>404 Not Found</title></head>\n<body>\n"
    page += "<p>The requested URL was not found on this server.</p>\n" * 20 + "</body></html>"
    logwell_receiver.fail_next(1, status=404, body=page)
    errors: list[LogwellError] = []
    handler = make_handler(on_error=errors.append)
    logger.addHandler(handler)
    logger.info("lost to a wrong path")
    assert handler.flush(timeout=10)
    (error,) = errors
    assert error.status_code == 404
    message = last_error(handler.stats())["message"]
    assert "404 Not Found" in message
    assert "\n" not in message, message
    assert "<" not in message, message
    assert len(message) < 120, message


def test_408_is_retried_like_a_network_error(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=408)
    logger.info("timed out once")
    assert handler.flush(timeout=10)
    assert logwell_receiver.statuses() == [408, 200]
    stats = handler.stats()
    assert (stats["retries"], stats["sent"], stats["failed"]) == (1, 1, 0)


def test_415_is_counted_as_failed_and_not_retried(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    errors: list[LogwellError] = []
    handler = make_handler(on_error=errors.append, flush_interval=60)
    logger.addHandler(handler)
    logwell_receiver.fail_next(1, status=415)
    logger.info("refused for its media type")
    logger.info("and its neighbour")
    assert handler.flush(timeout=10)
    assert logwell_receiver.statuses() == [415]
    stats = handler.stats()
    assert (stats["retries"], stats["sent"], stats["failed"]) == (0, 0, 2)
    assert [e.status_code for e in errors] == [415]
