"""pytest fixtures, loaded automatically when logwell_handler is installed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from .handler import LogwellHandler
from .testing import LogwellReceiver


@pytest.fixture
def logwell_receiver() -> Iterator[LogwellReceiver]:
    """A started :class:`~logwell_handler.testing.LogwellReceiver`, stopped after the test."""
    with LogwellReceiver() as receiver:
        yield receiver


@pytest.fixture
def logwell_test_handler(logwell_receiver: LogwellReceiver) -> LogwellHandler:
    """A ``LogwellHandler`` on the root logger that ships to ``logwell_receiver`` every
    0.1 s; ``logwell_receiver.wait_for()`` flushes it first, and after the test it is
    removed from the root (and any logger it was added to) and closed, pass or fail.
    Logger levels are the test's: ``caplog.set_level(logging.INFO)`` lets INFO through."""
    return logwell_receiver.handler(logging.getLogger())
