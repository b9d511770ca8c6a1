"""flush_after: an invocation's records are delivered before it returns, within a bound."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from logwell_handler import Logwell, flush_after
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


@pytest.fixture
def quiet_handler(make_handler: MakeHandler, logger: logging.Logger) -> logging.Logger:
    """A logger whose handler would send nothing for a minute on its own."""
    logger.addHandler(make_handler(flush_interval=60))
    return logger


def test_a_decorated_function_returns_after_its_records_are_delivered(
    quiet_handler: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    @flush_after
    def invocation(event: dict[str, Any], context: object) -> str:
        for i in range(3):
            quiet_handler.info("step %d of %s", i, event["id"])
        return "done"

    assert invocation({"id": "e-1"}, None) == "done"
    # No waiting here: they are on the server already.
    assert logwell_receiver.messages() == [f"step {i} of e-1" for i in range(3)]
    assert invocation.__name__ == "invocation"


def test_the_records_go_out_when_the_function_raises_too(
    quiet_handler: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    @flush_after(timeout=5)
    def invocation() -> None:
        quiet_handler.error("about to fail")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        invocation()
    assert logwell_receiver.messages() == ["about to fail"]


def test_a_coroutine_function_and_async_with(
    quiet_handler: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    @flush_after(timeout=5)
    async def invocation() -> int:
        quiet_handler.info("async step")
        return 7

    async def main() -> bool:
        assert await invocation() == 7
        assert logwell_receiver.messages() == ["async step"]
        async with flush_after() as flushing:
            quiet_handler.info("in async with")
        assert logwell_receiver.messages() == ["async step", "in async with"]
        return flushing.delivered

    assert asyncio.run(main()) is True


def test_the_clients_entries_go_out_as_well(logwell_receiver: LogwellReceiver) -> None:
    with Logwell(
        api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint, flush_interval=60
    ) as client:
        with flush_after() as flushing:
            client.info("from the client")
        assert flushing.delivered
        assert logwell_receiver.messages() == ["from the client"]


def test_a_slow_server_holds_the_return_no_longer_than_the_timeout(
    quiet_handler: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.fail_next(1, status=200, body={"accepted": 1}, delay=5)
    start = time.monotonic()
    with flush_after(timeout=0.5) as flushing:
        quiet_handler.info("slow")
    elapsed = time.monotonic() - start
    assert flushing.delivered is False
    assert elapsed < 3, f"{elapsed:.1f} s"


def test_a_bad_timeout_is_refused() -> None:
    with pytest.raises(Exception, match="Invalid timeout: must be a number of seconds >= 0"):
        flush_after(timeout=-1)


def test_an_object_with_an_async_call_is_awaited_before_the_flush(
    quiet_handler: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    class App:  # an ASGI app, Mangum's handler and the like
        async def __call__(self, event: str) -> str:
            await asyncio.sleep(0)
            quiet_handler.info("handled %s", event)
            return "ok"

    invocation = flush_after(App())
    assert asyncio.run(invocation("e-2")) == "ok"
    assert logwell_receiver.messages() == ["handled e-2"]


def test_a_stalled_endpoint_leaves_the_others_their_time(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    with LogwellReceiver() as stalled:
        stalled.delay = 5  # every reply waits 5 s
        for _ in range(3):
            logger.addHandler(
                make_handler(api_key=stalled.api_key, endpoint=stalled.endpoint, flush_interval=60)
            )
        logger.addHandler(make_handler(flush_interval=60))
        with flush_after(timeout=1) as flushing:
            logger.info("to both")
        assert flushing.delivered is False, "the stalled ones could not take it"
        assert logwell_receiver.messages() == ["to both"]
