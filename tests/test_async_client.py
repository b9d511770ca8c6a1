"""AsyncLogwell: flush and shutdown are awaitables that leave the event loop free."""

from __future__ import annotations

import asyncio

from logwell_handler import AsyncLogwell
from logwell_handler.testing import LogwellReceiver


def test_flush_on_a_slow_server_does_not_block_the_loop(
    logwell_receiver: LogwellReceiver,
) -> None:
    logwell_receiver.delay = 2.0

    async def main() -> tuple[int, object]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        async with AsyncLogwell(
            api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint
        ) as client:
            task = asyncio.create_task(ticker())
            client.info("slow one")
            response = await client.flush(timeout=10)
            stop.set()
            await task
        return ticks, response

    ticks, response = asyncio.run(main())
    assert response == {"accepted": 1}
    # 2 s at 10 ms a tick is ~200; a blocked loop would tick once or twice.
    assert ticks >= 20, ticks
    assert logwell_receiver.messages() == ["slow one"]


def test_async_child_and_shutdown(logwell_receiver: LogwellReceiver) -> None:
    async def main() -> None:
        client = AsyncLogwell(
            {"api_key": logwell_receiver.api_key, "endpoint": logwell_receiver.endpoint}
        )
        child = client.child({"request_id": "r-1"})
        assert isinstance(child, AsyncLogwell)
        child.warn("from child")
        await client.shutdown()
        client.info("ignored")
        await client.shutdown()

    asyncio.run(main())
    assert logwell_receiver.messages() == ["from child"]
    assert logwell_receiver.entries[0]["metadata"] == {"request_id": "r-1"}
