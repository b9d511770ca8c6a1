"""Bad configuration fails at construction, naming the field and what is allowed."""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from logwell_handler import ErrorCode, Logwell, LogwellError, LogwellHandler
from logwell_handler._settings import DEFAULTS, ENVIRONMENT, SHARED

from conftest import MakeHandler

KEY = "lw_" + "k" * 32
SECRET_KEY = "lw_" + "S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tXY"
OK: dict[str, Any] = {"api_key": KEY, "endpoint": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"batch_size": 0}, "batch_size", "from 1 to 100"),
        ({"batch_size": 101}, "batch_size", "from 1 to 100"),
        ({"batch_size": 2.5}, "batch_size", "must be an int"),
        ({"batch_size": True}, "batch_size", "must be an int"),
        ({"flush_interval": 0.01}, "flush_interval", "from 0.1 to 60"),
        ({"flush_interval": 61}, "flush_interval", "from 0.1 to 60"),
        ({"flush_interval": "soon"}, "flush_interval", "must be a number, got 'soon'"),
        ({"flush_interval": [5]}, "flush_interval", "must be a number"),
        ({"max_queue_size": 0}, "max_queue_size", "from 1 to 1000000"),
        ({"max_queue_size": 1_000_001}, "max_queue_size", "from 1 to 1000000"),
        ({"max_queue_size": 2**70}, "max_queue_size", "from 1 to 1000000"),
        ({"max_queue_bytes": 10}, "max_queue_bytes", "from 1024"),
        ({"max_requests_per_minute": -1}, "max_requests_per_minute", "from 0 to 1000000"),
        ({"max_retries": -1}, "max_retries", "from 0 to 100"),
        ({"timeout": 0}, "timeout", "greater than 0"),
        ({"timeout": float("inf")}, "timeout", "greater than 0"),
        ({"shutdown_timeout": -1}, "shutdown_timeout", "from 0 to 3600"),
        ({"endpoint": "localhost:8080"}, "endpoint", "http:// or https://"),
        ({"endpoint": "https://"}, "endpoint", "must name a host"),
        ({"endpoint": "https://h:notaport"}, "endpoint", "port that is not a number"),
        ({"endpoint": "https://h/#frag"}, "endpoint", "#fragment"),
        ({"endpoint": 8080}, "endpoint", "must be a str"),
        ({"api_key": "lw_short"}, "Invalid API key format", "'lw_' followed by 32 characters"),
        ({"metadata": ["not", "a", "dict"]}, "metadata", "must be a dict"),
        ({"source_path": "full"}, "source_path", "'relative', 'absolute', 'filename'"),
        ({"service": 7}, "service", "must be a str"),
        ({"on_error": "print"}, "on_error", "callable"),
        ({"level": "VERBOSE"}, "level", "a level name: CRITICAL, ERROR"),
        ({"level": "info"}, "level", "got 'info'"),
        ({"level": 2.5}, "level", "must be an int or a level name, got float"),
        ({"level": [20]}, "level", "must be an int or a level name, got list"),
    ],
)
def test_invalid_value_raises_invalid_config(
    change: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(LogwellError) as info:
        LogwellHandler(**{**OK, **change})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert field in str(info.value)
    assert allowed in str(info.value)


@pytest.mark.parametrize(
    ("field", "env"), [("api_key", "LOGWELL_API_KEY"), ("endpoint", "LOGWELL_ENDPOINT")]
)
def test_missing_setting_names_its_environment_variable(
    field: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGWELL_API_KEY", raising=False)
    monkeypatch.delenv("LOGWELL_ENDPOINT", raising=False)
    args = {k: v for k, v in OK.items() if k != field}
    with pytest.raises(LogwellError, match=env) as info:
        LogwellHandler(**args)
    assert info.value.code is ErrorCode.INVALID_CONFIG


def test_a_bad_level_with_a_client_raises_invalid_config_too() -> None:
    client = Logwell(api_key=KEY, endpoint="http://127.0.0.1:9")
    try:
        with pytest.raises(LogwellError, match="level") as info:
            LogwellHandler(client=client, level="VERBOSE")
        assert info.value.code is ErrorCode.INVALID_CONFIG
    finally:
        client.shutdown(timeout=0)


def test_bad_config_leaves_nothing_registered_with_logging() -> None:
    before = len(logging._handlerList)  # type: ignore[attr-defined]
    with pytest.raises(LogwellError):
        LogwellHandler(**{**OK, "batch_size": 0})
    assert len(logging._handlerList) == before  # type: ignore[attr-defined]


def test_key_never_in_repr_or_errors() -> None:
    handler = LogwellHandler(api_key=SECRET_KEY, endpoint="http://127.0.0.1:9", service="svc")
    try:
        assert "S3cr3t" not in repr(handler)
        assert "127.0.0.1:9" in repr(handler)
    finally:
        handler.close()
    with pytest.raises(LogwellError) as info:
        LogwellHandler(api_key=SECRET_KEY + "!", endpoint="http://127.0.0.1:9")
    assert "S3cr3t" not in str(info.value)
    assert "S3cr3t" not in repr(info.value)


def test_error_is_picklable_with_its_fields() -> None:
    import pickle

    err = LogwellError("boom", ErrorCode.RATE_LIMITED, 429, True, 60.0)
    back = pickle.loads(pickle.dumps(err))
    assert (back.code, back.status_code, back.retryable, back.retry_after) == (
        ErrorCode.RATE_LIMITED,
        429,
        True,
        60.0,
    )
    assert back.message == "boom"
    assert str(back) == "[RATE_LIMITED] boom (HTTP 429)", "the official SDKs' form"


def test_the_request_budget_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_handler: MakeHandler, logger: logging.Logger
) -> None:
    monkeypatch.setenv("LOGWELL_MAX_REQUESTS_PER_MINUTE", "2")  # 2 at once, then one in 30 s
    handler = make_handler(batch_size=1)
    logger.addHandler(handler)
    for i in range(2):
        logger.info("within the budget %d", i)
        assert handler.flush(timeout=5)
    logger.info("over it")
    assert handler.flush(timeout=0.5) is False
    assert handler.stats()["paced_waits"] == 1


def test_a_bad_request_budget_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGWELL_MAX_REQUESTS_PER_MINUTE", "lots")
    with pytest.raises(LogwellError) as info:
        LogwellHandler(**OK)
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert "Invalid LOGWELL_MAX_REQUESTS_PER_MINUTE: must be an integer, got 'lots'" in str(
        info.value
    )


def test_a_query_in_the_endpoint_is_kept_after_the_path() -> None:
    handler = LogwellHandler(api_key=KEY, endpoint="https://h/?tenant=a")
    try:
        assert "https://h/v1/ingest?tenant=a" in repr(handler)
    finally:
        handler.close()


def _shown(value: object) -> str:
    """A default as docs/configuration.md's table writes it."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size} {unit}"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def _documented() -> dict[str, tuple[str, str]]:
    """docs/configuration.md's table: argument -> (default cell, variable cell)."""
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]*) \|", text, flags=re.MULTILINE)
    return {name: (default.strip(), variable.strip()) for name, default, variable in rows}


def test_the_docs_name_every_setting_with_its_default_and_variable() -> None:
    own = {"level": "`NOTSET`", "metadata": "None", "use_formatter": "False", "storm_limit": "0"}
    defaults = {name: _shown(getattr(DEFAULTS, name)) for name in SHARED}
    expected = {
        name: (default, f"`{ENVIRONMENT[name]}`" if name in ENVIRONMENT else "-")
        for name, default in {**defaults, **own}.items()
    }
    assert _documented() == expected


@pytest.mark.parametrize("owner", [LogwellHandler, Logwell])
def test_the_handler_and_the_client_take_the_shared_settings_with_their_defaults(
    owner: type,
) -> None:
    parameters = inspect.signature(owner).parameters
    for name in SHARED:
        assert parameters[name].default is None, f"{name}: None stands for not given"


def test_a_client_setting_given_to_an_attached_handler_is_refused() -> None:
    client = Logwell(**OK)
    try:
        with pytest.raises(LogwellError, match="Invalid batch_size: cannot be given with client="):
            LogwellHandler(client=client, batch_size=10)
    finally:
        client.shutdown(0)
