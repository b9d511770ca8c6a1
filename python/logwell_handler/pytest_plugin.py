"""pytest fixtures, registered automatically when logwell_handler is installed.

pytest imports this module in every session of the environment, so it imports nothing of
the package until a test asks for a fixture: a session that never uses them neither loads
the extension nor registers the handler's fork and exit hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .handler import LogwellHandler
    from .testing import LogwellReceiver


@pytest.fixture
def logwell_receiver() -> Iterator[LogwellReceiver]:
    """A started :class:`~logwell_handler.testing.LogwellReceiver`, stopped after the test."""
    from .testing import LogwellReceiver

    with LogwellReceiver() as receiver:
        yield receiver


@pytest.fixture
def logwell_test_handler(logwell_receiver: LogwellReceiver) -> LogwellHandler:
    """A ``LogwellHandler`` on the root logger that ships to ``logwell_receiver`` every
    0.1 s; ``logwell_receiver.wait_for()`` flushes it first, and after the test it is
    removed from the root (and any logger it was added to) and closed, pass or fail.
    Logger levels are the test's: ``caplog.set_level(logging.INFO)`` lets INFO through."""
    return logwell_receiver.handler(logging.getLogger())
