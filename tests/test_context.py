"""log_context: fields that follow the code across threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from logwell_handler import Logwell, LogwellHandler, current_log_context, log_context
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler


def metadata_of(receiver: LogwellReceiver) -> dict[str, dict[str, object]]:
    return {e["message"]: e.get("metadata", {}) for e in receiver.entries}


def test_fields_nest_merge_and_rank_below_extra_above_static_metadata(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(metadata={"region": "eu", "user_id": "static"})
    logger.addHandler(handler)
    with log_context(request_id="r-1", user_id="u-9"):
        logger.info("outer")
        with log_context(user_id="u-inner", step=2) as fields:
            assert fields == {"request_id": "r-1", "user_id": "u-inner", "step": 2}
            logger.info("inner", extra={"step": "from extra"})
        logger.info("outer again")
    logger.info("outside")
    assert current_log_context() == {}
    assert handler.flush(timeout=10)
    meta = metadata_of(logwell_receiver)
    assert meta["outer"]["user_id"] == "u-9"
    assert meta["outer"]["region"] == "eu"
    assert meta["inner"] == {
        "step": "from extra",
        "request_id": "r-1",
        "user_id": "u-inner",
        "logger": logger.name,
        "region": "eu",
    }
    assert meta["outer again"]["user_id"] == "u-9"
    assert "step" not in meta["outer again"]
    assert meta["outside"]["user_id"] == "static"
    assert "request_id" not in meta["outside"]


def test_each_thread_has_its_own_fields(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        with log_context(worker=n):
            barrier.wait()  # all four contexts are open at once
            for i in range(50):
                logger.info("w%d-%d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(timeout=10)
    for message, meta in metadata_of(logwell_receiver).items():
        assert meta["worker"] == int(message[1]), message


def test_asyncio_tasks_inherit_a_copy_and_do_not_bleed(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping

    @log_context(component="api")
    async def serve(request_id: str) -> None:
        with log_context(request_id=request_id):
            logger.info("start %s", request_id)
            await asyncio.sleep(0.01)  # the others run meanwhile
            logger.info("end %s", request_id)

    async def main() -> None:
        with log_context(app="shop"):
            await asyncio.gather(*(serve(f"r{i}") for i in range(20)))

    asyncio.run(main())
    assert handler.flush(timeout=10)
    meta = metadata_of(logwell_receiver)
    assert len(meta) == 40
    for message, fields in meta.items():
        assert fields["request_id"] == message.split()[1], message
        assert (fields["app"], fields["component"]) == ("shop", "api")


def test_decorator_on_a_plain_function(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping

    @log_context(job="nightly")
    def run(n: int) -> int:
        logger.info("job step %d", n)
        return n * 2

    assert run(21) == 42
    logger.info("after the job")
    assert handler.flush(timeout=10)
    meta = metadata_of(logwell_receiver)
    assert meta["job step 21"]["job"] == "nightly"
    assert "job" not in meta["after the job"]


def test_the_client_reads_the_context_too(logwell_receiver: LogwellReceiver) -> None:
    client = Logwell(api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint)
    child = client.child({"module": "billing", "request_id": "child's"})
    with log_context(request_id="r-5", user_id="u-1"):
        child.info("charged", {"user_id": "call's"})
        client.info("plain")
    client.flush()
    client.shutdown()
    meta = metadata_of(logwell_receiver)
    assert meta["charged"] == {"module": "billing", "request_id": "r-5", "user_id": "call's"}
    assert meta["plain"] == {"request_id": "r-5", "user_id": "u-1"}


def test_the_fields_handed_out_refuse_writes_and_nothing_leaks(
    shipping: tuple[LogwellHandler, logging.Logger], logwell_receiver: LogwellReceiver
) -> None:
    handler, logger = shipping
    # Typed as read-only, but nothing stops a write at run time without a real view.
    outside: Any = current_log_context()
    with pytest.raises(TypeError):
        outside["leaked"] = "everywhere"
    with log_context(request_id="r-1") as fields:
        inside: Any = current_log_context()
        with pytest.raises(TypeError):
            inside["leaked"] = "in this request"
        given: Any = fields
        with pytest.raises(TypeError):
            given["leaked"] = "in this request"
        assert fields == current_log_context() == {"request_id": "r-1"}
        logger.info("inside")
    other = threading.Thread(target=logger.info, args=("another thread",))
    other.start()
    other.join()
    logger.info("outside")
    assert handler.flush(timeout=10)
    meta = metadata_of(logwell_receiver)
    assert meta["inside"]["request_id"] == "r-1"
    assert not any("leaked" in fields for fields in meta.values()), meta
    assert current_log_context() == {}
