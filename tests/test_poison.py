"""One bad or oversized entry costs only itself; long content is cut, visibly."""

from __future__ import annotations

import json
import logging

from logwell_handler import ErrorCode, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, last_error


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
    assert last_error(stats)["code"] == "VALIDATION_ERROR"
    assert "Entry at index 0 is refused" in last_error(stats)["message"]


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
    assert "413" in last_error(stats)["message"]
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
    # The note counts towards the limit.
    assert len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))) <= 4096


def test_the_note_on_thousands_of_left_out_fields_stays_within_the_limit(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    logger.addHandler(handler)
    logger.info("wide", extra={f"field_{i:05}": "v" * 10 for i in range(10_000)})
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    metadata = entry["metadata"]
    assert len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))) <= 64 * 1024
    # A few names, then a count of the rest (the record's own fields may be among them).
    note = metadata["_truncated"]
    names, more = note.split(": ", 1)[1].rsplit(" and ", 1)
    assert more.endswith(" more"), note
    counted = len(names.split(", ")) + int(more.split()[0])
    left_out = 10_000 - sum(k.startswith("field_") for k in metadata)
    assert left_out <= counted <= left_out + 10, note


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


def test_nul_anywhere_goes_out_as_the_replacement_character(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    # The receiver fails a whole batch with 500 for a NUL, as the real server does.
    handler = make_handler(service="shop\x00", batch_size=100, flush_interval=60)
    logger = logging.getLogger("nul\x00logger")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("c string\x00junk %s", b"\x00", extra={"k\x00ey": "v\x00al", "n": ["\x00"]})
        for i in range(300):
            logger.info("good %d", i)
        assert handler.flush(timeout=10)
    finally:
        logger.removeHandler(handler)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"]) == (301, 0), stats
    first = logwell_receiver.entries[0]
    assert first["message"] == "c string\ufffdjunk b'\\x00'"
    assert first["service"] == "shop\ufffd"
    assert first["metadata"]["k\ufffdey"] == "v\ufffdal"
    assert first["metadata"]["n"] == ["\ufffd"]
    assert first["metadata"]["logger"] == "nul\ufffdlogger"
    assert 500 not in logwell_receiver.statuses()


def test_an_entry_the_server_fails_with_500_costs_only_itself(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.fail_batch_if = lambda entry: "poison" in entry["message"]
    errors: list[LogwellError] = []
    handler = make_handler(batch_size=100, flush_interval=60, on_error=errors.append)
    logger.addHandler(handler)
    for i in range(300):
        logger.info("poison %d" if i == 37 else "good %d", i)
    assert handler.flush(timeout=20)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"], stats["queued"]) == (299, 1, 0), stats
    assert logwell_receiver.messages() == [f"good {i}" for i in range(300) if i != 37], "in order"
    assert [e.code for e in errors] == [ErrorCode.SERVER_ERROR]
    assert errors[0].status_code == 500
    assert "Internal server error" in last_error(stats)["message"]


def test_a_server_failing_everything_for_a_while_loses_nothing(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.fail_next(1_000_000, status=500)  # every request, until cleared
    errors: list[LogwellError] = []
    handler = make_handler(batch_size=100, max_retries=1, on_error=errors.append)
    logger.addHandler(handler)
    for i in range(250):
        logger.info("during the outage %d", i)
    assert handler.flush(timeout=3) is False
    failing = len(logwell_receiver.requests)
    assert failing >= 4, "split at least once before calling it an outage"
    stats = handler.stats()
    assert (stats["failed"], stats["queued"]) == (0, 250), stats
    assert all(e.code is ErrorCode.SERVER_ERROR for e in errors), errors
    logwell_receiver.clear()  # back up
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"]) == (250, 0), stats
    assert logwell_receiver.messages() == [f"during the outage {i}" for i in range(250)]


def test_an_outage_that_ends_in_the_middle_of_a_split_fails_nothing(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # The whole batch and its retry, then halves down to the first entry alone: all 500.
    logwell_receiver.fail_next(2 + 7, status=500)
    handler = make_handler(batch_size=100, flush_interval=60, max_retries=1)
    logger.addHandler(handler)
    for i in range(100):
        logger.info("m %d", i)
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"]) == (100, 0), stats
    assert sorted(logwell_receiver.messages()) == sorted(f"m {i}" for i in range(100))


def test_a_run_of_entries_the_server_fails_costs_only_that_run(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    # A loop logging the same bad value: ten in a row, the last of them ending a batch.
    logwell_receiver.fail_batch_if = lambda entry: "poison" in entry["message"]
    handler = make_handler(batch_size=100, flush_interval=60)
    logger.addHandler(handler)
    for i in range(200):
        logger.info("poison %d" if 90 <= i < 100 else "good %d", i)
    assert handler.flush(timeout=30)
    stats = handler.stats()
    assert (stats["sent"], stats["failed"], stats["queued"]) == (190, 10, 0), stats
    assert sorted(logwell_receiver.messages()) == sorted(
        f"good {i}" for i in range(200) if not 90 <= i < 100
    )
