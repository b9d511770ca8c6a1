"""loguru sinks and structlog's stdlib integration, shipping through the handler."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from loguru import logger as loguru_logger

from logwell_handler import LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, line_of

sys.path.insert(0, str(Path(__file__).parent / "apps"))
from structured import add_loguru_sink, configure_structlog

HERE = Path(__file__)


@pytest.fixture
def handler(make_handler: MakeHandler) -> LogwellHandler:
    return make_handler(service="shop")


def test_loguru_levels_source_and_bound_fields(
    handler: LogwellHandler, logwell_receiver: LogwellReceiver
) -> None:
    sink = add_loguru_sink(handler)
    try:
        loguru_logger.bind(request_id="r-1").info("from loguru {}", 42)  # marker: info
        loguru_logger.debug("dbg")
        loguru_logger.warning("careful")
        loguru_logger.error("bad")
        loguru_logger.critical("worse")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            loguru_logger.exception("failed")
    finally:
        loguru_logger.remove(sink)
    assert handler.flush(timeout=10)
    entries = {e["message"].split("\n")[0]: e for e in logwell_receiver.entries}
    info = entries["from loguru 42"]
    assert info["level"] == "info"
    assert info["sourceFile"].endswith("tests/test_loguru_structlog.py")
    assert info["lineNumber"] == line_of(HERE, "# marker: info")
    assert info["metadata"]["request_id"] == "r-1"
    assert info["metadata"]["logger"] == "test_loguru_structlog"
    levels = {m: entries[m]["level"] for m in ["dbg", "careful", "bad", "worse", "failed"]}
    assert levels == {
        "dbg": "debug",
        "careful": "warn",
        "bad": "error",
        "worse": "fatal",
        "failed": "error",
    }
    exception = entries["failed"]["metadata"]["exception"]
    assert exception["type"] == "ZeroDivisionError"
    assert "1 / 0" in exception["stacktrace"]


@pytest.fixture
def structlog_configured(handler: LogwellHandler) -> Iterator[io.StringIO]:
    console = io.StringIO()
    configure_structlog(handler, console)
    yield console
    structlog.reset_defaults()
    shop = logging.getLogger("shop")
    for h in list(shop.handlers):
        shop.removeHandler(h)


def test_structlog_event_keys_arrive_as_metadata(
    handler: LogwellHandler,
    structlog_configured: io.StringIO,
    logwell_receiver: LogwellReceiver,
) -> None:
    log = structlog.get_logger("shop.orders")
    structlog.contextvars.bind_contextvars(request_id="r-9")
    try:
        log.info("order paid", order_id=1042, amount=9.5)  # marker: structlog
    finally:
        structlog.contextvars.clear_contextvars()
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    assert entry["message"] == "order paid"
    assert entry["level"] == "info"
    assert entry["metadata"] == {
        "order_id": 1042,
        "amount": 9.5,
        "request_id": "r-9",
        "level": "info",
        "logger": "shop.orders",
    }
    assert entry["sourceFile"].endswith("tests/test_loguru_structlog.py")
    assert entry["lineNumber"] == line_of(HERE, "# marker: structlog")
    # The console still got its rendered line.
    assert "order paid" in structlog_configured.getvalue()
    assert "order_id=1042" in structlog_configured.getvalue()
