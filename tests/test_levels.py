from __future__ import annotations

import logging

from logwell_handler import LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def test_each_python_level_maps_to_its_band(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, log = shipping
    log.setLevel(1)
    cases = [
        (5, "debug"),  # below DEBUG
        (logging.DEBUG, "debug"),
        (15, "info"),
        (logging.INFO, "info"),
        (25, "warn"),  # a custom level between INFO and WARNING
        (logging.WARNING, "warn"),
        (35, "error"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "fatal"),
        (60, "fatal"),
    ]
    for levelno, _ in cases:
        log.log(levelno, "level %d", levelno)
    assert handler.flush(timeout=10)
    got = {e["message"]: e["level"] for e in logwell_receiver.entries}
    assert got == {f"level {n}": level for n, level in cases}


def test_named_custom_levels_fall_in_their_band(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, log = shipping
    log.setLevel(1)
    logging.addLevelName(5, "TRACE")
    logging.addLevelName(22, "NOTICE")  # above INFO, up to WARNING: the warn band
    log.log(5, "trace")
    log.log(22, "notice")
    assert handler.flush(timeout=10)
    assert {e["message"]: e["level"] for e in logwell_receiver.entries} == {
        "trace": "debug",
        "notice": "warn",
    }


def test_handler_level_filters(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(level="WARNING")
    logger.addHandler(handler)
    logger.info("dropped by level")
    logger.warning("kept")
    assert handler.flush(timeout=10)
    assert logwell_receiver.messages() == ["kept"]
    assert handler.stats()["enqueued"] == 1
