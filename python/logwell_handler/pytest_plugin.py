"""pytest fixtures, loaded automatically when logwell_handler is installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import LogwellReceiver


@pytest.fixture
def logwell_receiver() -> Iterator[LogwellReceiver]:
    """A started :class:`~logwell_handler.testing.LogwellReceiver`, stopped after the test."""
    with LogwellReceiver() as receiver:
        yield receiver
