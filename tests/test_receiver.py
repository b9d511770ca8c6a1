"""The shipped receiver answers as Logwell's server does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from logwell_handler.testing import LogwellReceiver


def post(
    receiver: LogwellReceiver,
    body: Any,
    *,
    key: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        receiver.endpoint + "/v1/ingest",
        data=data,
        method="POST",
        headers={
            "Content-Type": content_type,
            "Authorization": f"Bearer {key if key is not None else receiver.api_key}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


ENTRY = {"level": "info", "message": "hello"}


@pytest.mark.parametrize(
    ("kwargs", "body", "status", "error"),
    [
        ({"content_type": "text/plain"}, ENTRY, 415, "unsupported_media_type"),
        ({"key": "nope"}, ENTRY, 401, "unauthorized"),
        ({"key": "lw_" + "z" * 32}, ENTRY, 401, "unauthorized"),
        ({}, b"{not json", 400, "invalid_json"),
        ({}, [], 400, "validation_error"),
        ({}, [ENTRY] * 101, 400, "batch_too_large"),
        ({}, [{**ENTRY, "lineNumber": 1.5}], 500, "internal_error"),
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
