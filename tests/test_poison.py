"""One bad or oversized entry costs only itself; long content is cut, visibly."""

from __future__ import annotations

import json
import logging

from logwell_handler import ErrorCode, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_a_batch_refused_for_one_entry_is_split_until_that_entry_is_alone(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.refuse_batch_if = lambda entry: "poison" in entry["message"]
    errors: list[LogwellError] = []
    handler = make_handler(batch_size=100, flush_interval=60, on_error=errors.append)
    logger.addHandler(handler)
    for i in range(100):
        logger.info("poison %d" if i == 37 else "good %d", i)
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"]) == (99, 1), stats
    assert logwell_receiver.messages() == [f"good {i}" for i in range(100) if i != 37], "in order"
    # Halving 100 entries down to one takes one refused request per level.
    refused = logwell_receiver.statuses().count(400)
    assert 2 <= refused <= 8, logwell_receiver.statuses()
    assert [e.code for e in errors] == [ErrorCode.VALIDATION_ERROR]
    assert stats["last_error"]["code"] == "VALIDATION_ERROR"
    assert "Entry at index 0 is refused" in stats["last_error"]["message"]


def test_413_splits_and_only_the_oversized_entry_is_lost(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.max_body_bytes = 50_000
    handler = make_handler(batch_size=20, flush_interval=60, max_message_bytes=1 << 20)
    logger.addHandler(handler)
    for i in range(20):
        if i == 5:
            logger.info("big %s", "x" * 60_000)
        else:
            logger.info("small %d", i)
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"]) == (19, 1), stats
    assert "413" in stats["last_error"]["message"]
    assert len(logwell_receiver.entries) == 19


def test_long_message_is_cut_at_the_limit_with_a_marker(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    # 'é' is two bytes, so a cut at 64 KiB could fall inside one; it must not.
    logger.info("a" + "é" * 1_000_000)
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    message = entry["message"]
    head, marker = message.split("…", 1)
    assert marker == "[truncated: 2000001 bytes in all]"
    assert head == "a" + "é" * ((64 * 1024 - 1) // 2)
    assert len(head.encode()) <= 64 * 1024


def test_oversized_metadata_keeps_what_fits_and_names_what_was_left_out(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(max_metadata_bytes=4096)
    logger.addHandler(handler)
    rows = [{"id": i, "name": f"row {i}"} for i in range(1000)]
    logger.info("report", extra={"request_id": "r-1", "rows": rows, "tail": "kept"})
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    metadata = entry["metadata"]
    assert metadata["request_id"] == "r-1"
    assert metadata["tail"] == "kept"
    assert "rows" not in metadata
    assert "rows" in metadata["_truncated"]
    assert len(json.dumps(metadata)) < 4096 + 200


def test_long_metadata_strings_are_cut_like_messages(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(max_message_bytes=1024)
    logger.addHandler(handler)
    try:
        raise ValueError("v" * 5000)
    except ValueError:
        logger.exception("failed")
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    exception = entry["metadata"]["exception"]
    assert exception["message"].endswith("…[truncated: 5000 bytes in all]")
    assert exception["type"] == "ValueError"
