"""protocol="otlp": OTLP/HTTP JSON to the receiver's /v1/logs, checked the way Logwell's
server reads it and against the official OTLP protobuf schema."""

from __future__ import annotations

import base64
import copy
import logging
import os
import socket
import threading
import time
from typing import Any, Optional

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.trace import TracerProvider

import logwell_handler
from logwell_handler import ErrorCode, Logwell, LogwellError
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python
from test_fork import fork

OTLP_LEVELS = [
    (logging.DEBUG, 5, "DEBUG", "debug"),
    (logging.INFO, 9, "INFO", "info"),
    (logging.WARNING, 13, "WARNING", "warn"),
    (logging.ERROR, 17, "ERROR", "error"),
    (logging.CRITICAL, 21, "CRITICAL", "fatal"),
    # Custom levels: severityText is their name, whatever another test registered.
    (25, 12, None, "info"),  # above INFO: INFO's band, as OpenTelemetry maps it
    (5, 4, None, "debug"),  # below DEBUG: TRACE's band
]


def otlp_handler(make_handler: MakeHandler, **kwargs: Any) -> logwell_handler.LogwellHandler:
    return make_handler(protocol="otlp", **kwargs)


def test_every_field_arrives_where_the_mapping_says(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = otlp_handler(
        make_handler,
        service="shop",
        service_version="2.4.1",
        environment="staging",
        metadata={"team": "payments"},
    )
    logger.addHandler(handler)
    before = time.time()

    def charge() -> None:
        try:
            raise ValueError("card declined")
        except ValueError:
            logger.exception("charge %s failed", "c-1", extra={"order": {"id": 7, "n": [1.5]}})

    worker = threading.Thread(target=charge, name="payer")
    worker.start()
    worker.join()
    assert handler.flush(5)

    [record] = logwell_receiver.log_records
    assert logwell_receiver.requests[-1].headers["content-type"] == "application/json"
    assert record["scope"] == logger.name
    assert record["message"] == "charge c-1 failed"
    assert record["level"] == "error"
    assert (record["severityNumber"], record["severityText"]) == (17, "ERROR")
    assert before * 1e9 <= int(record["timeUnixNano"]) <= time.time() * 1e9
    assert int(record["timeUnixNano"]) <= int(record["observedTimeUnixNano"])
    assert "traceId" not in record
    assert "spanId" not in record

    attrs = record["attributes"]
    line = charge.__code__.co_firstlineno + 4
    assert attrs["code.filepath"] == attrs["code.file.path"] == "tests/test_otlp.py"
    assert attrs["code.lineno"] == attrs["code.line.number"] == line
    assert attrs["code.function.name"] == "charge"
    assert attrs["thread.name"] == "payer"
    assert isinstance(attrs["thread.id"], int)
    assert attrs["thread.id"] > 0
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "card declined"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last)")
    assert attrs["exception.stacktrace"].endswith("ValueError: card declined")
    assert attrs["order"] == {"id": 7, "n": [1.5]}
    assert attrs["team"] == "payments"
    assert "logger" not in attrs, "the logger is the scope"

    resource = record["resource"]
    assert resource == {
        "service.name": "shop",
        "service.version": "2.4.1",
        "deployment.environment": "staging",
        "deployment.environment.name": "staging",
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "telemetry.sdk.name": "logwell-handler",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": logwell_handler.__version__,
    }


@pytest.mark.parametrize(("levelno", "number", "text", "logwell_level"), OTLP_LEVELS)
def test_levels_become_severity_numbers_in_their_band(
    make_handler: MakeHandler,
    logger: logging.Logger,
    logwell_receiver: LogwellReceiver,
    levelno: int,
    number: int,
    text: Optional[str],
    logwell_level: str,
) -> None:
    text = text or logging.getLevelName(levelno)
    logger.setLevel(1)
    logger.addHandler(otlp_handler(make_handler))
    logger.log(levelno, "at %d", levelno)
    assert logwell_receiver.wait_for(1)
    [record] = logwell_receiver.log_records
    assert (record["severityNumber"], record["severityText"]) == (number, text)
    assert record["level"] == logwell_level


def test_records_go_out_grouped_by_service_and_logger(
    make_handler: MakeHandler, logwell_receiver: LogwellReceiver
) -> None:
    handler = otlp_handler(make_handler, service="shop", flush_interval=5)
    db, web = logging.getLogger("shop.db"), logging.getLogger("shop.web")
    for log in (db, web):
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        for i in range(6):
            (db if i % 2 else web).info("n=%d", i)
        assert handler.flush(5)
    finally:
        db.removeHandler(handler)
        web.removeHandler(handler)
    [payload] = logwell_receiver.otlp_payloads
    [resource_logs] = payload["resourceLogs"]
    scopes = {s["scope"]["name"]: s["logRecords"] for s in resource_logs["scopeLogs"]}
    assert sorted(scopes) == ["shop.db", "shop.web"]
    assert [r["body"]["stringValue"] for r in scopes["shop.db"]] == ["n=1", "n=3", "n=5"]


def test_trace_ids_come_from_the_active_span_and_only_inside_it(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    tracer = TracerProvider().get_tracer("tests")
    logger.addHandler(otlp_handler(make_handler))
    logger.info("before")
    with tracer.start_as_current_span("checkout") as span:
        logger.info("inside")
        context = span.get_span_context()
    logger.info("after")
    assert logwell_receiver.wait_for(3)
    by_message = {r["message"]: r for r in logwell_receiver.log_records}
    inside = by_message["inside"]
    assert inside["traceId"] == format(context.trace_id, "032x")
    assert inside["spanId"] == format(context.span_id, "016x")
    assert inside["flags"] == int(context.trace_flags)
    assert inside["flags"] & 1 == 1, "sampled"
    for outside in (by_message["before"], by_message["after"]):
        assert "traceId" not in outside
        assert "spanId" not in outside
        assert "flags" not in outside


def test_the_logwell_protocol_puts_trace_ids_in_metadata(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    tracer = TracerProvider().get_tracer("tests")
    logger.addHandler(make_handler())
    with tracer.start_as_current_span("checkout") as span:
        logger.info("inside")
        context = span.get_span_context()
    logger.info("outside")
    assert logwell_receiver.wait_for(2)
    inside, outside = logwell_receiver.entries
    assert inside["metadata"]["trace_id"] == format(context.trace_id, "032x")
    assert inside["metadata"]["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside.get("metadata", {})


def to_protobuf_json(payload: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON writes trace and span ids as hex where protobuf's JSON mapping has
    base64: the one exception the OTLP spec makes, undone here before parsing."""
    payload = copy.deepcopy(payload)
    for resource_logs in payload["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        # URL-safe, which protobuf decodes with: 3.15 warns of a '+'.
                        record[key] = base64.urlsafe_b64encode(bytes.fromhex(record[key])).decode()
    return payload


def test_bodies_parse_strictly_against_the_official_otlp_schema(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logger.addHandler(otlp_handler(make_handler, service="shop", metadata={"ok": True}))
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("s") as span:
        logger.warning(
            "every kind of value",
            extra={
                "n": -3,
                "big": 2**70,
                "f": float("nan"),
                "inf": float("-inf"),
                "none": None,
                "nested": {"list": [1, "a", {"deep": True}], "t": (1, 2)},
                "obj": object(),
            },
            stack_info=True,
        )
    assert logwell_receiver.wait_for(1)
    [payload] = logwell_receiver.otlp_payloads
    request = ExportLogsServiceRequest()
    # Unknown fields or values of the wrong type raise ParseError.
    json_format.ParseDict(to_protobuf_json(payload), request, ignore_unknown_fields=False)
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
    assert record.span_id == span.get_span_context().span_id.to_bytes(8, "big")
    assert record.severity_number == 13
    assert record.body.string_value == "every kind of value"
    assert record.time_unix_nano > 0
    assert record.observed_time_unix_nano > 0
    attrs = {kv.key: kv.value for kv in record.attributes}
    assert attrs["n"].int_value == -3
    assert attrs["big"].string_value == str(2**70)
    assert str(attrs["f"].double_value) == "nan"
    assert attrs["inf"].double_value == float("-inf")
    assert not attrs["none"].HasField("value")
    nested = {kv.key: kv.value for kv in attrs["nested"].kvlist_value.values}
    assert [v.WhichOneof("value") for v in nested["list"].array_value.values] == [
        "int_value",
        "string_value",
        "kvlist_value",
    ]
    assert attrs["obj"].string_value.startswith("<object object at")
    assert attrs["code.stacktrace"].string_value.startswith("Stack (most recent call last)")
    assert attrs["ok"].bool_value is True
    resource = {kv.key: kv.value for kv in request.resource_logs[0].resource.attributes}
    assert resource["service.name"].string_value == "shop"
    assert resource["process.pid"].int_value == os.getpid()


def test_a_request_holds_at_most_100_records_for_logwell(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = otlp_handler(make_handler, batch_size=100, flush_interval=5)
    logger.addHandler(handler)
    for i in range(250):
        logger.info("n=%d", i)
    assert handler.flush(10)
    assert len(logwell_receiver.log_records) == 250
    sizes = [r.entries for r in logwell_receiver.requests]
    assert all(size <= 100 for size in sizes), sizes
    assert logwell_receiver.statuses() == [200] * len(sizes)


def test_a_collector_takes_larger_batches_when_batch_size_says_so(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.max_batch = None
    handler = otlp_handler(make_handler, batch_size=400, flush_interval=5)
    logger.addHandler(handler)
    for i in range(400):
        logger.info("n=%d", i)
    assert logwell_receiver.wait_for(400)
    sizes = [r.entries for r in logwell_receiver.requests]
    # Past 100 a request per batch; a request also stops growing at 256 KiB of body.
    assert sum(sizes) == 400
    assert len(sizes) <= 2, sizes
    assert max(sizes) > 100, sizes


def test_partial_success_is_counted_and_reported(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.otlp_reply = "collector"
    logwell_receiver.reject_record_if = lambda r: "bad" in r["message"]
    errors: list[LogwellError] = []
    handler = otlp_handler(make_handler, on_error=errors.append)
    logger.addHandler(handler)
    for message in ("good 1", "bad 1", "good 2", "bad 2"):
        logger.info(message)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["sent"], stats["rejected_by_server"]) == (2, 2)
    assert logwell_receiver.messages() == ["good 1", "good 2"]
    assert errors
    assert "rejected 2 of 4" in str(errors[0])
    assert "refused by the test" in str(errors[0])


def test_a_refused_batch_is_split_and_only_the_bad_record_is_lost(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.refuse_batch_if = lambda r: "poison" in r["message"]
    handler = otlp_handler(make_handler, flush_interval=5)
    logger.addHandler(handler)
    for i in range(10):
        logger.info("poison" if i == 6 else f"n={i}")
    assert handler.flush(10)
    assert sorted(logwell_receiver.messages()) == sorted(f"n={i}" for i in range(10) if i != 6)
    assert handler.stats()["failed"] == 1


def test_server_errors_and_rate_limits_are_retried(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.fail_next(2, status=503)
    logwell_receiver.fail_next(1, status=429, retry_after=0.2)
    handler = otlp_handler(make_handler)
    logger.addHandler(handler)
    logger.info("eventually")
    assert handler.flush(10)
    assert logwell_receiver.messages() == ["eventually"]
    stats = handler.stats()
    assert stats["retries"] == 2
    assert stats["rate_limited_waits"] == 1


def test_extra_headers_are_sent_and_can_carry_a_collectors_own_auth(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logwell_receiver.authorization = "Basic dTpw"
    handler = otlp_handler(
        make_handler,
        api_key=None,
        headers={"Authorization": "Basic dTpw", "X-Scope-OrgID": "tenant-1"},
    )
    logger.addHandler(handler)
    logger.info("to a collector")
    assert handler.flush(5)
    assert logwell_receiver.messages() == ["to a collector"]
    assert logwell_receiver.requests[-1].headers["x-scope-orgid"] == "tenant-1"


def test_a_collector_without_auth_needs_no_key(
    logger: logging.Logger, logwell_receiver: LogwellReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGWELL_API_KEY", raising=False)
    logwell_receiver.authorization = ""
    handler = logwell_handler.LogwellHandler(
        endpoint=logwell_receiver.endpoint + "/v1/logs", protocol="otlp", flush_interval=0.2
    )
    try:
        logger.addHandler(handler)
        logger.info("no key")
        assert handler.flush(5)
        assert logwell_receiver.messages() == ["no key"]
        assert handler._core.request_url == logwell_receiver.endpoint + "/v1/logs"
    finally:
        handler.close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"protocol": "grpc"}, "Invalid protocol: must be 'logwell' or 'otlp'"),
        ({"protocol": "otlp", "headers": {"Bad Name": "x"}}, "Invalid headers: names must be HTTP"),
        ({"protocol": "otlp", "headers": {"X-A": "a\nb"}}, 'value of "X-A"'),
        ({"protocol": "otlp", "headers": {"Content-Type": "text/plain"}}, "cannot set"),
        ({"protocol": "otlp", "headers": ["X-A"]}, "Invalid headers: must be a dict"),
        (
            {"protocol": "otlp", "batch_size": 10_001},
            "Invalid batch_size: must be an integer from 1",
        ),
        ({"batch_size": 101}, "from 1 to 100"),
        ({"service_version": "1.0"}, "Invalid service_version: applies to protocol='otlp' only"),
        ({"protocol": "otlp", "environment": 3}, "Invalid environment: must be a str"),
        (
            {"protocol": "otlp", "api_key": "two words"},
            "Invalid API key format: must be visible ASCII",
        ),
    ],
)
def test_bad_otlp_settings_fail_at_construction(
    logwell_receiver: LogwellReceiver, kwargs: dict[str, Any], named: str
) -> None:
    kwargs.setdefault("api_key", logwell_receiver.api_key)
    with pytest.raises(LogwellError) as raised:
        logwell_handler.LogwellHandler(endpoint=logwell_receiver.endpoint, **kwargs)
    assert raised.value.code == ErrorCode.INVALID_CONFIG
    assert named in str(raised.value)


def test_the_client_speaks_otlp_too(logwell_receiver: LogwellReceiver) -> None:
    tracer = TracerProvider().get_tracer("tests")
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        service="billing",
        protocol="otlp",
        flush_interval=0.2,
    ) as client:
        client.debug("d")
        client.warn("w", {"k": 1})
        client.child(service="mailer").fatal("f")
        client.log({"level": "error", "message": "dated", "timestamp": "2026-01-02T03:04:05.5Z"})
        with tracer.start_as_current_span("s") as span:
            client.info("traced")
        with pytest.raises(LogwellError) as raised:
            client.log({"level": "info", "message": "m", "timestamp": "yesterday"})
        assert raised.value.code == ErrorCode.VALIDATION_ERROR
        client.flush()
    records = {r["message"]: r for r in logwell_receiver.log_records}
    severities = {m: (r["severityNumber"], r["severityText"]) for m, r in records.items()}
    assert severities == {
        "d": (5, "DEBUG"),
        "w": (13, "WARN"),
        "f": (21, "FATAL"),
        "dated": (17, "ERROR"),
        "traced": (9, "INFO"),
    }
    assert records["w"]["attributes"] == {"k": 1}
    assert records["w"]["resource"]["service.name"] == "billing"
    assert records["f"]["resource"]["service.name"] == "mailer"
    assert records["w"]["scope"] == "logwell_handler"
    assert records["dated"]["timeUnixNano"] == "1767323045500000000"
    assert records["traced"]["traceId"] == format(span.get_span_context().trace_id, "032x")


def test_the_clients_timestamps_may_have_any_number_of_fractional_digits(
    logwell_receiver: LogwellReceiver,
) -> None:
    # Python 3.9 and 3.10 parse 3 or 6 digits only. Digits past the microsecond are cut,
    # as 3.11 does.
    fractions = {
        ".5Z": "500000000",
        ",5Z": "500000000",
        ".12Z": "120000000",
        ".1234+00:00": "123400000",
        ".12345Z": "123450000",
        ".123456": "123456000",
        ".1234569Z": "123456000",
        ".123456789Z": "123456000",
    }
    with Logwell(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        protocol="otlp",
        flush_interval=0.2,
    ) as client:
        for fraction in fractions:
            client.log(
                {
                    "level": "info",
                    "message": fraction,
                    "timestamp": "2026-01-02T03:04:05" + fraction,
                }
            )
        client.flush()
    got = {r["message"]: r["timeUnixNano"] for r in logwell_receiver.log_records}
    assert got == {f: "1767323045" + nanos for f, nanos in fractions.items()}


def test_without_opentelemetry_imported_nothing_imports_it(
    logwell_receiver: LogwellReceiver,
) -> None:
    code = """
import logging, sys
from logwell_handler import LogwellHandler
handler = LogwellHandler(protocol="otlp", flush_interval=0.2)
logging.getLogger().addHandler(handler)
logging.getLogger().warning("plain")
assert handler.flush(5)
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported"
"""
    proc, _ = run_python(code, env=receiver_env(logwell_receiver))
    assert proc.returncode == 0, proc.stderr
    assert logwell_receiver.messages() == ["plain"]


def test_a_forked_child_reports_its_own_pid(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork() on this platform")
    handler = otlp_handler(make_handler)
    logger.addHandler(handler)
    pid = fork()  # the receiver's threads run in this process: 3.12+ warns of them
    if pid == 0:  # the child: log, flush, and leave without running the parent's atexit
        logger.info("from the child")
        code = 0 if handler.flush(5) else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [record] = logwell_receiver.log_records
    assert record["resource"]["process.pid"] == pid != os.getpid()
