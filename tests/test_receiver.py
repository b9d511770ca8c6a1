"""The shipped receiver answers as Logwell's server does."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from email.message import Message
from typing import Any, Optional

import pytest

from logwell_handler.testing import LogwellReceiver


def send(
    receiver: LogwellReceiver,
    body: Any,
    *,
    path: str = "/v1/ingest",
    key: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str | None] | None = None,
) -> tuple[int, Any, Message]:
    """POSTs `body` (bytes as they are, anything else as JSON); returns the status, the
    reply (parsed if JSON, else text) and its headers. Sends ``Accept: */*`` as the
    handler's HTTP client does, unless `headers` says otherwise (None: no such header)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {
        "Content-Type": content_type,
        "Authorization": f"Bearer {key if key is not None else receiver.api_key}",
        "Accept": "*/*",
        **(headers or {}),
    }
    req = urllib.request.Request(
        receiver.endpoint + path,
        data=data,
        method="POST",
        headers={k: v for k, v in sent.items() if v is not None},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, _reply(resp.headers, resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        with e:
            return e.code, _reply(e.headers, e.read()), e.headers


def _reply(headers: Message, data: bytes) -> Any:
    if headers.get_content_type() == "application/json":
        return json.loads(data)
    return data.decode()


def post(
    receiver: LogwellReceiver,
    body: Any,
    *,
    key: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    status, reply, _ = send(receiver, body, key=key, content_type=content_type)
    return status, reply


ENTRY = {"level": "info", "message": "hello"}


@pytest.mark.parametrize(
    ("kwargs", "body", "status", "error"),
    [
        ({"content_type": "application/xml"}, ENTRY, 415, "unsupported_media_type"),
        ({"content_type": "application/jsonp"}, ENTRY, 415, "unsupported_media_type"),
        ({"key": "nope"}, ENTRY, 401, "unauthorized"),
        ({"key": "lw_" + "z" * 32}, ENTRY, 401, "unauthorized"),
        ({}, b"{not json", 400, "invalid_json"),
        ({}, b'{"level": "info", "message": "x", "n": NaN}', 400, "invalid_json"),
        ({}, [], 400, "validation_error"),
        ({}, [ENTRY] * 101, 400, "batch_too_large"),
    ],
)
def test_refusals(
    logwell_receiver: LogwellReceiver,
    kwargs: dict[str, Any],
    body: Any,
    status: int,
    error: str,
) -> None:
    got_status, reply = post(logwell_receiver, body, **kwargs)
    assert (got_status, reply["error"]) == (status, error)
    assert logwell_receiver.entries == []


def test_charset_parameter_is_fine_and_single_entries_accepted(
    logwell_receiver: LogwellReceiver,
) -> None:
    status, reply = post(logwell_receiver, ENTRY, content_type="application/json; charset=utf-8")
    assert (status, reply) == (200, {"accepted": 1})


def test_invalid_entries_are_rejected_one_by_one(logwell_receiver: LogwellReceiver) -> None:
    batch = [
        ENTRY,
        {"level": "WARN", "message": "x"},
        {"level": "info", "message": "  "},
        {"level": "info", "message": "x", "lineNumber": 0},
        {"level": "info", "message": "x", "metadata": []},
    ]
    status, reply = post(logwell_receiver, batch)
    assert status == 200
    assert reply["accepted"] == 1
    assert reply["rejected"] == 4
    assert [e.split(":")[0] for e in reply["errors"]] == [
        f"Entry at index {i}" for i in range(1, 5)
    ]
    assert logwell_receiver.entries == [ENTRY]


def test_injected_faults_then_recovery(logwell_receiver: LogwellReceiver) -> None:
    logwell_receiver.fail_next(1, status=429, retry_after=60)
    assert post(logwell_receiver, ENTRY)[0] == 429
    assert post(logwell_receiver, ENTRY)[0] == 200
    assert logwell_receiver.statuses() == [429, 200]


# -- where the receiver follows the real server beyond its source ----------------------


def kv(key: str, value: Any) -> dict[str, Any]:
    """An OTLP KeyValue holding a string, or `value` as the AnyValue it already is."""
    return {"key": key, "value": value if isinstance(value, dict) else {"stringValue": value}}


def otlp_export(
    body: str = "hello",
    attributes: Optional[list[dict[str, Any]]] = None,
    resource: Optional[list[dict[str, Any]]] = None,
    scope: str = "app",
) -> dict[str, Any]:
    """An OTLP/HTTP JSON export holding a clean record and one made of the arguments."""
    clean = {"severityNumber": 9, "body": {"stringValue": "clean"}}
    record = {"severityNumber": 9, "body": {"stringValue": body}, "attributes": attributes or []}
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource or [kv("service.name", "shop")]},
                "scopeLogs": [{"scope": {"name": scope}, "logRecords": [clean, record]}],
            }
        ]
    }


@pytest.mark.parametrize(
    "poison",
    [
        {"message": "a\x00b"},
        {"service": "shop\x00"},
        {"sourceFile": "/app/\x00.py"},
        {"metadata": {"logger": "app\x00"}},
        {"metadata": {"request": {"head\x00ers": {"x": 1}}}},
        {"metadata": {"items": [1, {"tags": ["ok", "\x00"]}]}},
        {"lineNumber": 1.5},
    ],
    ids=["message", "service", "sourceFile", "value", "nested key", "in a list", "line 1.5"],
)
def test_a_batch_the_database_refuses_fails_whole_with_500_and_stores_nothing(
    logwell_receiver: LogwellReceiver, poison: dict[str, Any]
) -> None:
    status, reply = post(logwell_receiver, [ENTRY, {**ENTRY, **poison}])
    assert status == 500
    assert reply["message"] == "Internal server error"
    assert len(reply["id"]) == 12  # the error id the server logs
    assert logwell_receiver.entries == []
    assert post(logwell_receiver, [ENTRY]) == (200, {"accepted": 1})
    assert logwell_receiver.entries == [ENTRY]


def test_a_nul_the_server_does_not_store_costs_nothing(logwell_receiver: LogwellReceiver) -> None:
    # An entry refused on its own is not stored; neither is a field the server ignores.
    batch = [{**ENTRY, "unknown": "\x00"}, {"level": "WARN", "message": "\x00"}]
    status, reply = post(logwell_receiver, batch)
    assert (status, reply["accepted"], reply["rejected"]) == (200, 1, 1)
    assert logwell_receiver.entries == [batch[0]]


@pytest.mark.parametrize(
    "export",
    [
        otlp_export(body="he\x00llo"),
        otlp_export(attributes=[kv("code.\x00", "x")]),
        otlp_export(attributes=[kv("http", {"kvlistValue": {"values": [kv("path", "/\x00")]}})]),
        otlp_export(resource=[kv("service.name", "shop\x00")]),
        otlp_export(scope="app\x00"),
    ],
    ids=["body", "attribute key", "nested attribute value", "resource", "scope"],
)
def test_a_nul_in_an_otlp_record_fails_the_whole_export_with_500(
    logwell_receiver: LogwellReceiver, export: dict[str, Any]
) -> None:
    status, reply, _ = send(logwell_receiver, export, path="/v1/logs")
    assert (status, reply["message"]) == (500, "Internal server error")
    assert logwell_receiver.log_records == []
    status, reply, _ = send(logwell_receiver, otlp_export(), path="/v1/logs")
    assert (status, reply) == (200, {"accepted": 2})
    assert logwell_receiver.messages() == ["clean", "hello"]


@pytest.mark.parametrize(
    ("accept", "json_reply"),
    [
        ("*/*", True),
        ("application/json", True),
        ("text/html;q=0.9, application/json", True),
        (None, False),
        ("text/html", False),
        ("text/html, application/json", False),
    ],
)
def test_a_store_failure_answers_json_only_to_a_client_that_accepts_it(
    logwell_receiver: LogwellReceiver, accept: str | None, json_reply: bool
) -> None:
    poisoned = {**ENTRY, "message": "\x00"}
    status, reply, headers = send(logwell_receiver, poisoned, headers={"Accept": accept})
    assert status == 500
    if json_reply:
        assert reply["message"] == "Internal server error"
    else:
        assert headers.get_content_type() == "text/html"
        assert "Internal server error" in reply


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "Multipart/Form-Data; boundary=x",
    ],
)
@pytest.mark.parametrize("path", ["/v1/ingest", "/v1/logs"])
def test_a_form_content_type_is_refused_403_by_the_cross_site_check_before_anything(
    logwell_receiver: LogwellReceiver, content_type: str, path: str
) -> None:
    # Even a wrong key: the framework answers before the route runs.
    status, reply, headers = send(
        logwell_receiver, ENTRY, path=path, key="nope", content_type=content_type
    )
    assert (status, reply) == (403, "Cross-site POST form submissions are forbidden")
    assert headers.get_content_type() == "text/plain"
    status, reply, _ = send(
        logwell_receiver,
        ENTRY,
        path=path,
        content_type=content_type,
        headers={"Accept": "application/json"},
    )
    assert (status, reply) == (403, {"message": "Cross-site POST form submissions are forbidden"})
    assert logwell_receiver.statuses() == [403, 403]


def test_a_same_origin_form_post_passes_the_cross_site_check_to_get_415(
    logwell_receiver: LogwellReceiver,
) -> None:
    status, reply, _ = send(
        logwell_receiver,
        ENTRY,
        content_type="text/plain",
        headers={"Origin": logwell_receiver.endpoint},
    )
    assert (status, reply["error"]) == (415, "unsupported_media_type")


def test_otlp_protobuf_is_unsupported_media_type(logwell_receiver: LogwellReceiver) -> None:
    status, reply, _ = send(
        logwell_receiver,
        b"\x0a\x02\x0a\x00",
        path="/v1/logs",
        content_type="application/x-protobuf",
    )
    assert (status, reply["error"]) == (415, "unsupported_media_type")
    assert logwell_receiver.log_records == []


@pytest.mark.parametrize(("path", "body"), [("/v1/ingest", [ENTRY]), ("/v1/logs", otlp_export())])
def test_a_gzip_body_is_not_decompressed_so_it_is_invalid_json(
    logwell_receiver: LogwellReceiver, path: str, body: Any
) -> None:
    status, reply, _ = send(
        logwell_receiver,
        gzip.compress(json.dumps(body).encode()),
        path=path,
        headers={"Content-Encoding": "gzip"},
    )
    assert (status, reply["error"]) == (400, "invalid_json")
    assert logwell_receiver.entries == logwell_receiver.log_records == []


def test_the_rate_limit_is_off_by_default_and_set_per_minute(
    logwell_receiver: LogwellReceiver,
) -> None:
    assert logwell_receiver.rate_limit_per_minute is None
    assert logwell_receiver.rate_limit_retry_after == 60
    with pytest.raises(ValueError, match="rate_limit_per_minute"):
        logwell_receiver.rate_limit_per_minute = 0
    logwell_receiver.rate_limit_per_minute = 1
    assert logwell_receiver.rate_limit_per_minute == 1
    assert [post(logwell_receiver, ENTRY)[0] for _ in range(2)] == [200, 429]
    logwell_receiver.rate_limit_per_minute = None
    assert [post(logwell_receiver, ENTRY)[0] for _ in range(2)] == [200, 200]


def test_a_429_says_retry_after_60_on_both_routes_and_comes_after_the_key(
    logwell_receiver: LogwellReceiver,
) -> None:
    logwell_receiver.rate_limit_per_minute = 1  # one request, then one a minute
    assert post(logwell_receiver, ENTRY)[0] == 200
    status, reply, headers = send(logwell_receiver, ENTRY)
    assert (status, headers["Retry-After"]) == (429, "60")
    assert reply == {
        "error": "rate_limited",
        "message": "Rate limit exceeded. Retry in 60 seconds.",
    }
    status, reply, headers = send(logwell_receiver, otlp_export(), path="/v1/logs")
    assert (status, reply, headers["Retry-After"]) == (429, {"error": "rate_limited"}, "60")
    # The key is checked first, the body only after the limit.
    assert post(logwell_receiver, ENTRY, key="nope")[0] == 401
    assert post(logwell_receiver, b"{not json")[0] == 429
    assert logwell_receiver.statuses() == [200, 429, 429, 401, 429]
    assert (logwell_receiver.entries, logwell_receiver.log_records) == ([ENTRY], [])


def test_one_bucket_for_both_routes_holds_a_minutes_worth_and_refills_continuously(
    logwell_receiver: LogwellReceiver,
) -> None:
    logwell_receiver.rate_limit_per_minute = 60  # 60 at once, then one a second
    routes = [("/v1/ingest", ENTRY), ("/v1/logs", otlp_export())]
    start = time.monotonic()
    passed = 0
    while True:
        path, body = routes[passed % 2]
        status, _, headers = send(logwell_receiver, body, path=path)
        if status == 429:
            break
        assert status == 200
        passed += 1
        assert passed <= 60 + (time.monotonic() - start)
    assert headers["Retry-After"] == "60"
    # 60 in all across both routes, and at most the tokens refilled while they went out.
    assert 60 <= passed <= 60 + (time.monotonic() - start)
    # Refused requests take nothing: the next token comes (passed - 59) s after the first
    # request, when the bucket, emptied of passed tokens, has refilled to one.
    while send(logwell_receiver, ENTRY)[0] == 429:
        assert time.monotonic() - start < passed - 59 + 3, "no token came back"
        time.sleep(0.05)
    assert passed - 59 - 0.05 <= time.monotonic() - start <= passed - 59 + 3
