"""TLS is verified, a key sent in clear is warned about, and the key never leaks."""

from __future__ import annotations

import base64
import logging
import pickle
import textwrap
from pathlib import Path

import pytest

from logwell_handler import Logwell, LogwellError, LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import run_python
from test_overflow import unused_port


def test_certificates_are_verified_by_default(
    https_receiver: tuple[LogwellReceiver, Path], logger: logging.Logger
) -> None:
    receiver, _ = https_receiver
    errors: list[LogwellError] = []
    handler = LogwellHandler(
        api_key=receiver.api_key,
        endpoint=receiver.endpoint,
        max_retries=0,
        shutdown_timeout=0.5,
        on_error=errors.append,
    )
    logger.addHandler(handler)
    logger.info("to a server the system does not trust")
    assert handler.flush(timeout=1) is False
    handler.close()
    assert receiver.entries == []
    assert errors
    assert "certificate" in str(errors[0]).lower(), errors


def test_a_ca_file_makes_a_private_ca_trusted(
    https_receiver: tuple[LogwellReceiver, Path], logger: logging.Logger
) -> None:
    receiver, ca_file = https_receiver
    handler = LogwellHandler(api_key=receiver.api_key, endpoint=receiver.endpoint, ca_file=ca_file)
    logger.addHandler(handler)
    logger.info("over verified TLS")
    assert handler.flush(timeout=10)
    handler.close()
    assert receiver.messages() == ["over verified TLS"]


def test_a_ca_file_that_is_not_pem_fails_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(LogwellError, match="Invalid ca_file: must be a PEM file"):
        LogwellHandler(api_key="lw_" + "k" * 32, endpoint="https://logs.example", ca_file=bad)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_plain_http_off_loopback_warns_once_per_url() -> None:
    collect = _Collect()
    ours = logging.getLogger("logwell_handler")
    ours.addHandler(collect)
    key = "lw_" + "k" * 32
    made = []
    try:
        for endpoint in [
            "http://logs.internal.example:3000",
            "http://logs.internal.example:3000/",
            "https://logs.example",
            "http://127.0.0.1:3000",
            "http://localhost:3000",
        ]:
            made.append(LogwellHandler(api_key=key, endpoint=endpoint, shutdown_timeout=0))
    finally:
        ours.removeHandler(collect)
        for handler in made:
            handler.close()
    assert len(collect.messages) == 1, collect.messages
    assert "http://logs.internal.example:3000/v1/ingest" in collect.messages[0]
    assert "unencrypted" in collect.messages[0]
    assert key not in collect.messages[0]


LEAKY = textwrap.dedent(
    """
    import logging, os, sys
    from logwell_handler import LogwellHandler
    log = logging.getLogger("leak")
    log.setLevel(logging.INFO)
    log.addHandler(LogwellHandler(endpoint=sys.argv[1], max_retries=0, shutdown_timeout=0.5))
    log.info("refused or undeliverable")
    print(repr(log.handlers[0]), log.handlers[0].stats())
    """
)


def test_the_key_never_appears_anywhere(
    logwell_receiver: LogwellReceiver, logger: logging.Logger
) -> None:
    key = "lw_" + "S3cr3tK3y" * 3 + "abcde"
    seen: list[str] = []
    errors: list[LogwellError] = []
    handler = LogwellHandler(
        api_key=key, endpoint=logwell_receiver.endpoint, on_error=errors.append
    )
    logger.addHandler(handler)
    logger.info("refused: the receiver knows another key")
    assert handler.flush(timeout=10)
    assert errors, "the 401 was reported"
    client = Logwell(api_key=key, endpoint=logwell_receiver.endpoint)
    seen += [repr(handler), str(handler), str(handler.stats()), repr(client), str(client.stats())]
    seen += [f"{e!s} {e!r} {e.args!r} {pickle.loads(pickle.dumps(e))!r}" for e in errors]
    client.shutdown()
    handler.close()
    for bad in [key + "x", key[:-1] + "!"]:
        with pytest.raises(LogwellError) as info:
            LogwellHandler(api_key=bad, endpoint=logwell_receiver.endpoint)
        seen.append(f"{info.value!s} {info.value!r}")
    # A process whose shipping fails writes its errors to stderr: no key there either.
    for endpoint in [logwell_receiver.endpoint, f"http://127.0.0.1:{unused_port()}"]:
        proc, _ = run_python(LEAKY, endpoint, env={"LOGWELL_API_KEY": key})
        assert proc.returncode == 0, proc.stderr
        assert "UNAUTHORIZED" in proc.stderr or "NETWORK_ERROR" in proc.stderr, proc.stderr
        seen += [proc.stdout, proc.stderr]
    for text in seen:
        assert "S3cr3tK3y" not in text, text


@pytest.mark.parametrize("status", [400, 401, 413, 500])
def test_a_key_the_server_echoes_is_redacted_everywhere(
    logwell_receiver: LogwellReceiver, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    key = logwell_receiver.api_key
    echo = {"error": "refused", "message": f"Invalid API key: Bearer {key} for this project"}
    logwell_receiver.fail_next(3, status=status, body=echo)
    errors: list[LogwellError] = []
    handler = LogwellHandler(
        api_key=key, endpoint=logwell_receiver.endpoint, max_retries=0, on_error=errors.append
    )
    log = logging.getLogger(f"echo{status}")
    log.propagate = False
    log.addHandler(handler)
    log.error("one entry alone")
    handler.flush(timeout=5)
    handler.close()
    assert errors
    texts = [str(e) for e in errors] + [str(handler.stats()["last_error"])]
    texts.append(capsys.readouterr().err)
    assert all(key not in t for t in texts), texts
    assert any("[redacted]" in t for t in texts), texts


def test_a_password_in_the_endpoint_is_never_shown() -> None:
    handler = LogwellHandler(api_key="lw_" + "k" * 32, endpoint="https://ops:s3cr3t@127.0.0.1:9")
    try:
        assert "s3cr3t" not in repr(handler)
        assert "ops:***@127.0.0.1" in repr(handler)
    finally:
        handler.close()
    with pytest.raises(LogwellError) as info:
        LogwellHandler(api_key="lw_" + "k" * 32, endpoint="https://ops:s3cr3t@h:notaport")
    assert "s3cr3t" not in str(info.value)
    assert "port" in str(info.value)


def test_basic_credentials_from_the_endpoint_are_redacted_when_echoed(
    logwell_receiver: LogwellReceiver,
) -> None:
    # No key, OTLP: the endpoint's user info goes as `Authorization: Basic <base64>`.
    basic = base64.b64encode(b"ops:s3cr3tPW9").decode()
    logwell_receiver.authorization = ""
    logwell_receiver.fail_next(1, status=401, body={"error": f"Invalid credentials: Basic {basic}"})
    errors: list[LogwellError] = []
    endpoint = logwell_receiver.endpoint.replace("http://", "http://ops:s3cr3tPW9@")
    handler = LogwellHandler(
        endpoint=endpoint, protocol="otlp", max_retries=0, on_error=errors.append
    )
    log = logging.getLogger("echo-basic")
    log.propagate = False
    log.addHandler(handler)
    log.error("one entry alone")
    handler.flush(timeout=5)
    handler.close()
    texts = [str(e) for e in errors] + [str(handler.stats()["last_error"])]
    assert any("Invalid credentials: Basic [redacted]" in t for t in texts), texts
    assert all(basic not in t and "s3cr3tPW9" not in t for t in texts), texts
