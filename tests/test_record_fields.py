"""What a LogRecord becomes on the wire: every field, as the server stores it."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import sys
import time
from typing import Any

import pytest

from logwell_handler import LogwellHandler
from logwell_handler._core import EMPTY_MESSAGE_PLACEHOLDER
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler

Shipping = tuple[LogwellHandler, logging.Logger]


def ship_one(shipping: Shipping, receiver: LogwellReceiver, fn: Any) -> dict[str, Any]:
    handler, log = shipping
    fn(log)
    assert handler.flush(timeout=10)
    assert len(receiver.entries) == 1, receiver.entries
    return receiver.entries[0]


def test_source_file_and_line_are_the_call_site(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    handler, log = shipping
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    log.info("here")
    assert handler.flush(timeout=10)
    entry = logwell_receiver.entries[0]
    assert entry["lineNumber"] == line
    assert entry["sourceFile"] == os.path.relpath(__file__)
    assert entry["service"] == "tests"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("absolute", os.path.abspath(__file__)),
        ("filename", os.path.basename(__file__)),
        ("relative", os.path.relpath(__file__)),
    ],
)
def test_source_path_modes(
    mode: str,
    expected: str,
    make_handler: MakeHandler,
    logger: logging.Logger,
    logwell_receiver: LogwellReceiver,
) -> None:
    handler = make_handler(source_path=mode)
    logger.addHandler(handler)
    logger.info("x")
    assert handler.flush(timeout=10)
    assert logwell_receiver.entries[0]["sourceFile"] == expected


def test_message_timestamp_and_logger_name(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    before = time.time()
    entry = ship_one(shipping, logwell_receiver, lambda log: log.info("a %s b %d", "x", 3))
    after = time.time()
    assert entry["message"] == "a x b 3"
    stamp = dt.datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    seconds = stamp.replace(tzinfo=dt.timezone.utc).timestamp()
    assert before - 0.001 <= seconds <= after + 0.001
    assert entry["metadata"]["logger"] == shipping[1].name


def test_extra_fields_go_to_metadata_with_their_types(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    extra = {
        "request_id": "r-1",
        "user_id": 42,
        "ratio": 0.5,
        "ok": True,
        "nothing": None,
        "tags": ["a", "b"],
        "nested": {"k": (1, 2)},
        "huge": 2**80,
    }
    entry = ship_one(shipping, logwell_receiver, lambda log: log.info("x", extra=extra))
    meta = entry["metadata"]
    for key, value in extra.items():
        expected = {"k": [1, 2]} if key == "nested" else value
        assert meta[key] == expected, key
    assert "levelname" not in meta, "standard attributes stay out"
    assert "msg" not in meta


def test_values_json_cannot_hold_go_out_as_repr(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    extra = {
        "when": when,
        "obj": Unprintable(),
        "nan": float("nan"),
        "surrogate": "bad \udc80 char",
        "mapping": {1: "int key", None: "none key", (1, 2): "tuple key"},
        "deep": [[[[[[[[[["bottom"]]]]]]]]]],
    }
    entry = ship_one(shipping, logwell_receiver, lambda log: log.info("odd values", extra=extra))
    meta = entry["metadata"]
    assert meta["when"] == repr(when)
    assert meta["obj"] == "<unrepresentable Unprintable>"
    assert meta["nan"] == "nan"
    assert meta["surrogate"].startswith("bad \ufffd")
    assert meta["surrogate"].endswith(" char")
    assert meta["mapping"] == {"1": "int key", "None": "none key", "(1, 2)": "tuple key"}
    assert "bottom" in str(meta["deep"])


def test_exception_info_in_metadata(shipping: Shipping, logwell_receiver: LogwellReceiver) -> None:
    def log_it(log: logging.Logger) -> None:
        try:
            raise ValueError("bad value 7")
        except ValueError:
            log.exception("it broke")

    entry = ship_one(shipping, logwell_receiver, log_it)
    exc = entry["metadata"]["exception"]
    assert entry["level"] == "error"
    assert exc["type"] == "ValueError"
    assert exc["message"] == "bad value 7"
    assert exc["stacktrace"].startswith("Traceback (most recent call last):")
    assert 'raise ValueError("bad value 7")' in exc["stacktrace"]


def test_exception_type_is_qualified_outside_builtins(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    class PaymentError(Exception):
        pass

    def log_it(log: logging.Logger) -> None:
        try:
            raise PaymentError("declined")
        except PaymentError as e:
            log.error("payment", exc_info=e)

    entry = ship_one(shipping, logwell_receiver, log_it)
    assert entry["metadata"]["exception"]["type"] == (
        f"{__name__}.test_exception_type_is_qualified_outside_builtins.<locals>.PaymentError"
    )


def test_exception_outside_except_block_is_left_out(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    entry = ship_one(shipping, logwell_receiver, lambda log: log.exception("no exception here"))
    assert "exception" not in entry["metadata"]


def test_stack_info_in_metadata(shipping: Shipping, logwell_receiver: LogwellReceiver) -> None:
    entry = ship_one(shipping, logwell_receiver, lambda log: log.info("where", stack_info=True))
    assert entry["metadata"]["stack"].startswith("Stack (most recent call last):")
    assert "test_stack_info_in_metadata" in entry["metadata"]["stack"]


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_blank_message_gets_a_placeholder(
    blank: str, shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    entry = ship_one(shipping, logwell_receiver, lambda log: log.info(blank))
    assert entry["message"] == EMPTY_MESSAGE_PLACEHOLDER


def test_broken_format_args_still_deliver(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    def log_it(log: logging.Logger) -> None:
        # Straight to our handler: pytest's own capture handlers raise on a bad format.
        record = log.makeRecord(log.name, logging.INFO, __file__, 1, "%d items", ("many",), None)
        shipping[0].handle(record)

    entry = ship_one(shipping, logwell_receiver, log_it)
    assert entry["message"] == "%d items"
    assert "format" in entry["metadata"]["message_error"]
    assert entry["metadata"]["args"] == "('many',)"


def test_metadata_precedence_static_then_logger_then_extra(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(metadata={"env": "prod", "region": "eu", "logger": "static"})
    logger.addHandler(handler)
    logger.info("a", extra={"region": "us"})
    assert handler.flush(timeout=10)
    meta = logwell_receiver.entries[0]["metadata"]
    assert meta == {"env": "prod", "region": "us", "logger": logger.name}


def test_filter_returning_a_record(shipping: Shipping, logwell_receiver: LogwellReceiver) -> None:
    handler, log = shipping

    def redact(record: logging.LogRecord) -> logging.LogRecord:
        clone = logging.makeLogRecord(record.__dict__)
        clone.msg, clone.args = "redacted", ()
        return clone

    handler.addFilter(redact)  # type: ignore[arg-type]  # allowed from 3.12
    log.info("secret %s", "s3cr3t")
    assert handler.flush(timeout=10)
    # From 3.12 a filter may replace the record; before, a returned record only means "keep".
    expected = "redacted" if sys.version_info >= (3, 12) else "secret s3cr3t"
    assert logwell_receiver.messages() == [expected]


def test_filter_can_drop(shipping: Shipping, logwell_receiver: LogwellReceiver) -> None:
    handler, log = shipping
    handler.addFilter(lambda r: "keep" in r.getMessage())
    log.info("drop me")
    log.info("keep me")
    assert handler.flush(timeout=10)
    assert logwell_receiver.messages() == ["keep me"]


class _RecordWithOwnFields(logging.LogRecord):
    """Sets an attribute before LogRecord's own and overrides getMessage: the encoder
    can neither read this record by position nor make its message itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tenant = "t-1"
        super().__init__(*args, **kwargs)

    def getMessage(self) -> str:
        return "custom: " + super().getMessage()


def test_records_of_another_shape_keep_every_field(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_RecordWithOwnFields)
    try:

        def log_one(log: logging.Logger) -> None:
            try:
                raise KeyError("k")
            except KeyError:
                log.warning("n=%d", 5, exc_info=True, extra={"request_id": "r-1"})

        entry = ship_one(shipping, logwell_receiver, log_one)
    finally:
        logging.setLogRecordFactory(factory)
    assert entry["level"] == "warn"
    assert entry["message"] == "custom: n=5"
    assert entry["lineNumber"] > 0
    metadata = entry["metadata"]
    assert metadata["tenant"] == "t-1"
    assert metadata["request_id"] == "r-1"
    assert metadata["exception"]["type"] == "KeyError"
    assert metadata["logger"] == shipping[1].name


def test_attributes_a_formatter_added_are_not_extras(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    def log_one(log: logging.Logger) -> None:
        record = log.makeRecord(log.name, logging.INFO, __file__, 7, "x %s", ("y",), None)
        logging.Formatter("%(asctime)s %(message)s").format(record)  # sets message, asctime
        record.order_id = 42
        log.handle(record)

    entry = ship_one(shipping, logwell_receiver, log_one)
    assert entry["message"] == "x y"
    assert entry["metadata"] == {"order_id": 42, "logger": shipping[1].name}


class _RecordWithClassDefaults(logging.LogRecord):
    """Holds `pathname` on the class rather than the instance: the encoder must read it
    the way `getattr` does."""

    pathname = "/srv/app/from_class.py"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.__dict__["pathname"]


def test_attributes_outside_the_record_dict_are_still_read(
    shipping: Shipping, logwell_receiver: LogwellReceiver
) -> None:
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_RecordWithClassDefaults)
    try:
        entry = ship_one(shipping, logwell_receiver, lambda log: log.info("m"))
    finally:
        logging.setLogRecordFactory(factory)
    assert entry["sourceFile"] == "/srv/app/from_class.py"
    assert entry["message"] == "m"
