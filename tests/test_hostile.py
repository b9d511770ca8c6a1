"""Hostile record content never raises into the application and never costs the record."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from logwell_handler import Logwell
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python

SCRIPT = textwrap.dedent(
    """
    import json, logging, math, random, sys
    from logwell_handler import LogwellHandler

    class BadRepr:
        def __repr__(self): raise RuntimeError("no repr")
        def __str__(self): raise RuntimeError("no str")

    class BadStr:
        def __str__(self): raise RuntimeError("no str")

    class BadException(Exception):
        def __str__(self): raise RuntimeError("no str")

    class BadFormatter(logging.Formatter):
        def format(self, record): raise RuntimeError("formatter failed")

    recursive_dict = {}
    recursive_dict["self"] = recursive_dict
    recursive_list = []
    recursive_list.append(recursive_list)
    HOSTILE = [
        BadRepr(), BadStr(), recursive_dict, recursive_list, b"\\xff\\x00bytes",
        bytearray(b"\\x80"), "lone \\ud800 surrogate", float("nan"), math.inf, -math.inf,
        10**100, -(10**5000), {1: "int key", (1, 2): "tuple key", None: "none key"},
        {BadRepr(): "key without str"}, {"\\udcff": "surrogate key"}, object(), {1, 2},
        "", " ", "\\x00\\n\\t", "é" * 100_000, [BadRepr(), math.nan],
    ]

    protocol = sys.argv[2]
    handle_errors = []
    handler = LogwellHandler(batch_size=100, flush_interval=0.2, protocol=protocol)
    handler.handleError = handle_errors.append
    log = logging.getLogger("hostile")
    log.propagate = False
    log.setLevel(1)
    log.addHandler(handler)

    rng = random.Random(20261120)
    logged = 0
    for i in range(int(sys.argv[1])):
        value = rng.choice(HOSTILE)
        kind = i % 8
        if kind == 0:
            log.info("value %s", value)
        elif kind == 1:
            log.info("%d", "x")
        elif kind == 2:
            log.warning(value)
        elif kind == 3:
            log.error("extra", extra={"payload": value, "n": i})
        elif kind == 4:
            try:
                raise BadException()
            except BadException:
                log.exception("bad exception %d", i)
        elif kind == 5:
            log.info("%s %s", value)
        elif kind == 6:
            log.info("%(a)s", {"b": value})
        else:
            log.log(rng.choice([1, 5, 15, 25, 45, 99]), value, extra={str(i): value})
        logged += 1

    # A record made by hand, with the attributes the encoder reads set to junk.
    made = logging.LogRecord("hostile", 20, None, None, "handmade", None, None, func=None)
    made.thread, made.threadName, made.levelname, made.name = None, BadStr(), BadRepr(), 7
    made.created = "yesterday"
    log.handle(made)
    logged += 1

    formatted = LogwellHandler(protocol=protocol, use_formatter=True)
    formatted.setFormatter(BadFormatter())
    formatted.handleError = handle_errors.append
    log.addHandler(formatted)
    log.info("through a formatter that raises")
    log.removeHandler(formatted)

    print(json.dumps({
        "logged": logged,
        "flushed": handler.flush(timeout=30),
        "handle_errors": len(handle_errors),
        "stats": handler.stats(),
    }))
    """
)


@pytest.mark.parametrize("protocol", ["logwell", "otlp"])
def test_thousands_of_hostile_records_all_arrive(
    logwell_receiver: LogwellReceiver, protocol: str
) -> None:
    proc, _ = run_python(
        SCRIPT,
        "4000",
        protocol,
        env=receiver_env(logwell_receiver),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout)
    assert result["flushed"], result
    stats = result["stats"]
    # The last record went to both handlers: the plain one shipped it.
    assert logwell_receiver.wait_for(4002, timeout=10), stats
    assert stats["sent"] == 4002
    assert stats["failed"] == stats["rejected_by_server"] == 0, stats
    assert result["handle_errors"] == 1, "only the formatter's failure reaches handleError"
    assert all(r.status == 200 for r in logwell_receiver.requests)
    messages = logwell_receiver.messages()
    assert "<unrepresentable BadRepr>" in messages
    assert "%d" in messages, "a bad format keeps its template"
    assert "handmade" in messages
    if protocol == "otlp":
        types = [
            r["attributes"]["exception.type"]
            for r in logwell_receiver.log_records
            if "exception.type" in r["attributes"]
        ]
    else:
        types = [
            e["metadata"]["exception"]["type"]
            for e in logwell_receiver.entries
            if "exception" in e.get("metadata", {})
        ]
    assert len(types) == 500
    assert all(t.endswith("BadException") for t in types)
    assert messages.count("through a formatter that raises") == 1


def test_a_value_whose_repr_changes_the_dict_holding_it_goes_out(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    holder: dict[str, object] = {}

    class Grows:
        def __repr__(self) -> str:
            holder[f"k{len(holder)}"] = 1
            return "grows"

    holder["v"] = Grows()
    handler = make_handler()
    logger.addHandler(handler)
    logger.warning("changing dict", extra={"holder": holder})  # raises nothing
    assert handler.flush(timeout=5)
    (entry,) = logwell_receiver.entries
    assert entry["metadata"]["holder"]["v"] == "grows"
    assert handler.stats()["failed"] == 0


def test_a_lone_surrogate_becomes_one_replacement_character(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    logger.addHandler(handler)
    logger.info("a\ud800b", extra={"k\udcffey": "x\ud83dy"})
    assert handler.flush(timeout=5)
    (entry,) = logwell_receiver.entries
    assert entry["message"] == "a\ufffdb"
    assert entry["metadata"]["k\ufffdey"] == "x\ufffdy"


@pytest.mark.parametrize("timeout", [1e19, float("inf"), 1e300])
def test_huge_timeouts_wait_as_long_as_needed_and_never_panic(
    make_handler: MakeHandler, logger: logging.Logger, timeout: float
) -> None:
    handler = make_handler()
    logger.addHandler(handler)
    logger.info("one")
    assert handler.flush(timeout) is True
    client = Logwell(api_key="lw_" + "k" * 32, endpoint="http://127.0.0.1:9")
    client.shutdown(timeout=timeout)  # nothing queued: returns at once
