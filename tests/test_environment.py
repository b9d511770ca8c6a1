"""Every setting from a LOGWELL_* variable, OpenTelemetry's variables for protocol="otlp",
and settings given as text (fileConfig's kwargs, env-substituted YAML)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from logwell_handler import ErrorCode, Logwell, LogwellError, LogwellHandler
from logwell_handler._settings import ENVIRONMENT
from logwell_handler.testing import LogwellReceiver


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No LOGWELL_* or OTEL_* variable from the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("LOGWELL_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _ship_one(handler: LogwellHandler, message: str = "hello %s", *args: object) -> None:
    log = logging.getLogger(f"env.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        log.info(message, *args)
        assert handler.flush(timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()


def test_settings_come_from_their_variables(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    env = clean_environment
    env.setenv("LOGWELL_API_KEY", logwell_receiver.api_key)
    env.setenv("LOGWELL_ENDPOINT", logwell_receiver.endpoint)
    env.setenv("LOGWELL_SERVICE", "from-env")
    env.setenv("LOGWELL_LEVEL", "INFO")
    env.setenv("LOGWELL_HEADERS", "X-Tenant=acme,X-Note=a%2Cb")
    env.setenv("LOGWELL_METADATA", "region=eu,team=core")
    env.setenv("LOGWELL_USE_FORMATTER", "true")
    env.setenv("LOGWELL_SOURCE_PATH", "filename")
    env.setenv("LOGWELL_MAX_MESSAGE_BYTES", "1024")
    env.setenv("LOGWELL_FLUSH_INTERVAL", "0.2")
    handler = LogwellHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    assert handler.level == logging.INFO
    _ship_one(handler, "%s", "x" * 3000)
    (entry,) = logwell_receiver.entries
    assert entry["service"] == "from-env"
    assert entry["metadata"]["region"] == "eu"
    assert entry["metadata"]["team"] == "core"
    assert entry["message"].startswith("[INFO] xxx"), "LOGWELL_USE_FORMATTER"
    assert "truncated" in entry["message"]
    assert len(entry["message"].encode()) < 1100
    assert entry["sourceFile"] == "test_environment.py"
    headers = logwell_receiver.requests[0].headers
    assert headers["x-tenant"] == "acme"
    assert headers["x-note"] == "a,b"


def test_an_argument_wins_over_its_variable(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    clean_environment.setenv("LOGWELL_SERVICE", "from-env")
    clean_environment.setenv("LOGWELL_BATCH_SIZE", "not even a number")
    handler = LogwellHandler(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        service="from-argument",
        batch_size=10,
    )
    _ship_one(handler)
    assert logwell_receiver.entries[0]["service"] == "from-argument"


# A value each variable's setting refuses: it fails at construction, naming the variable
# when the text is not of the setting's kind, and the setting when it is out of range.
BAD: dict[str, tuple[str, str]] = {
    "api_key": ("lw_short", "Invalid API key format"),
    "endpoint": ("ftp://logs.example.com", "Invalid endpoint URL"),
    "service": ("", ""),
    "protocol": ("grpc", "Invalid protocol"),
    "headers": ("no-equals-sign", "Invalid LOGWELL_HEADERS"),
    "service_version": ("1.0", "Invalid service_version: applies to protocol='otlp' only"),
    "environment": ("prod", "Invalid environment: applies to protocol='otlp' only"),
    "batch_size": ("500", "Invalid batch_size"),
    "flush_interval": ("often", "Invalid LOGWELL_FLUSH_INTERVAL: must be a number"),
    "max_queue_size": ("0", "Invalid max_queue_size"),
    "max_queue_bytes": ("1e9", "Invalid LOGWELL_MAX_QUEUE_BYTES: must be an integer"),
    "max_requests_per_minute": ("-1", "Invalid max_requests_per_minute"),
    "max_retries": ("1000", "Invalid max_retries"),
    "timeout": ("0", "Invalid timeout"),
    "shutdown_timeout": ("-1", "Invalid shutdown_timeout"),
    "max_message_bytes": ("10", "Invalid max_message_bytes"),
    "max_metadata_bytes": ("10", "Invalid max_metadata_bytes"),
    "ca_file": ("/nonexistent/ca.pem", "Invalid ca_file"),
    "spool_dir": (__file__, "Invalid spool_dir"),
    "max_spool_bytes": ("10", "Invalid max_spool_bytes"),
    "level": ("LOUD", "Invalid level"),
    "metadata": ("=x", "Invalid LOGWELL_METADATA"),
    "use_formatter": ("maybe", "Invalid LOGWELL_USE_FORMATTER: must be true or false"),
    "storm_limit": ("-1", "Invalid storm_limit: must be an integer from 0"),
    "source_path": ("full", "Invalid source_path"),
}


@pytest.mark.parametrize("name", sorted(set(ENVIRONMENT) - {"service", "capture_source_location"}))
def test_each_variable_is_read(clean_environment: pytest.MonkeyPatch, name: str) -> None:
    clean_environment.setenv("LOGWELL_API_KEY", "lw_" + "k" * 32)
    clean_environment.setenv("LOGWELL_ENDPOINT", "http://127.0.0.1:9")
    value, named = BAD[name]
    clean_environment.setenv(ENVIRONMENT[name], value)
    with pytest.raises(LogwellError) as info:
        LogwellHandler()
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert named in info.value.message


def test_capture_source_location_comes_from_its_variable(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    clean_environment.setenv("LOGWELL_CAPTURE_SOURCE_LOCATION", "1")
    with Logwell(api_key=logwell_receiver.api_key, endpoint=logwell_receiver.endpoint) as client:
        client.info("where")
        client.flush(timeout=10)
    assert logwell_receiver.entries[0]["sourceFile"].endswith("test_environment.py")


def test_numbers_and_flags_given_as_text_are_read(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    handler = LogwellHandler(
        api_key=logwell_receiver.api_key,
        endpoint=logwell_receiver.endpoint,
        batch_size=" 2 ",  # type: ignore[arg-type]
        flush_interval="60",  # type: ignore[arg-type]
        max_retries="0",  # type: ignore[arg-type]
        use_formatter="no",  # type: ignore[arg-type]
        level="20",
    )
    assert handler.level == logging.INFO
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log = logging.getLogger("env.text")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("one")
        log.warning("two")  # batch_size 2: sent long before the 60 s tick
        assert logwell_receiver.wait_for(2, timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert logwell_receiver.messages() == ["one", "two"]


def _otlp_environment(env: pytest.MonkeyPatch, receiver: LogwellReceiver) -> None:
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    env.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{receiver.api_key},X-T=a")
    env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,team=core,host.name=h1")
    env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")


def test_opentelemetrys_variables_configure_the_otlp_protocol(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    _otlp_environment(clean_environment, logwell_receiver)
    clean_environment.setenv("OTEL_SERVICE_NAME", "checkout")
    handler = LogwellHandler(protocol="otlp", flush_interval=0.2)
    _ship_one(handler)
    (record,) = logwell_receiver.log_records
    resource = record["resource"]
    assert resource["service.name"] == "checkout", "OTEL_SERVICE_NAME wins over the attribute"
    assert resource["team"] == "core"
    assert resource["host.name"] == "h1", "the variable overrides what was detected"
    assert logwell_receiver.requests[0].headers["x-t"] == "a"


def test_the_logs_endpoint_and_headers_win_over_the_general_ones(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    _otlp_environment(clean_environment, logwell_receiver)
    clean_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    clean_environment.setenv(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"{logwell_receiver.endpoint}/v1/logs"
    )
    clean_environment.setenv(
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS", f"Authorization=Bearer {logwell_receiver.api_key}"
    )
    handler = LogwellHandler(protocol="otlp", flush_interval=0.2)
    _ship_one(handler)
    assert logwell_receiver.log_records[0]["resource"]["service.name"] == "from-attrs"
    assert "x-t" not in logwell_receiver.requests[0].headers


def test_logwell_variables_win_over_opentelemetrys(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    _otlp_environment(clean_environment, logwell_receiver)
    clean_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    clean_environment.setenv("LOGWELL_ENDPOINT", logwell_receiver.endpoint)
    clean_environment.setenv("LOGWELL_PROTOCOL", "otlp")
    clean_environment.setenv("LOGWELL_SERVICE", "ours")
    handler = LogwellHandler(flush_interval=0.2)
    _ship_one(handler)
    assert logwell_receiver.log_records[0]["resource"]["service.name"] == "ours"


def test_opentelemetrys_variables_do_not_apply_to_the_logwell_protocol(
    clean_environment: pytest.MonkeyPatch, logwell_receiver: LogwellReceiver
) -> None:
    _otlp_environment(clean_environment, logwell_receiver)
    with pytest.raises(LogwellError, match="Configuration missing 'api_key'"):
        LogwellHandler()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", "just-a-token"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
    ],
)
def test_a_bad_opentelemetry_variable_is_named(
    clean_environment: pytest.MonkeyPatch,
    logwell_receiver: LogwellReceiver,
    variable: str,
    value: str,
) -> None:
    clean_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", logwell_receiver.endpoint)
    clean_environment.setenv(variable, value)
    with pytest.raises(LogwellError, match=f"Invalid {variable}"):
        LogwellHandler(protocol="otlp")


def test_the_official_sdks_order_of_checks(clean_environment: pytest.MonkeyPatch) -> None:
    settings: dict[str, Any] = {"api_key": "lw_" + "k" * 32, "batch_size": 0}
    with pytest.raises(LogwellError, match=r"^\[INVALID_CONFIG\] Invalid endpoint URL"):
        Logwell({**settings, "endpoint": "not a url"})
    with pytest.raises(LogwellError, match=r"^\[INVALID_CONFIG\] Invalid API key format"):
        Logwell({**settings, "api_key": "nope", "endpoint": "not a url"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key:SuperSecretToken123"),
        ("LOGWELL_HEADERS", "Authorization Bearer sk-live-SuperSecretToken123"),
    ],
)
def test_a_malformed_header_is_refused_without_showing_it(
    clean_environment: pytest.MonkeyPatch,
    logwell_receiver: LogwellReceiver,
    variable: str,
    value: str,
) -> None:
    clean_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", logwell_receiver.endpoint)
    clean_environment.setenv(variable, value)
    with pytest.raises(LogwellError) as info:
        LogwellHandler(protocol="otlp")
    assert f"Invalid {variable}: must be key=value pairs" in info.value.message
    assert "item 1 is not" in info.value.message
    assert "SuperSecret" not in str(info.value)


def test_the_logs_endpoint_is_used_as_given_and_the_general_one_as_a_base(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/otlp")
    base = LogwellHandler(protocol="otlp")
    clean_environment.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://127.0.0.1:9/gw/logs")
    given = LogwellHandler(protocol="otlp")
    argument = LogwellHandler(protocol="otlp", endpoint="http://127.0.0.1:9/gw")
    try:
        assert "http://127.0.0.1:9/otlp/v1/logs " in repr(base)
        assert "http://127.0.0.1:9/gw/logs " in repr(given), "the spec's: used as given"
        assert "http://127.0.0.1:9/gw/v1/logs " in repr(argument), "endpoint= is a base"
    finally:
        for handler in (base, given, argument):
            handler.close()
