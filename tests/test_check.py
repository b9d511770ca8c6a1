"""`python -m logwell_handler check` and `receiver`: run as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logwell_handler.testing import LogwellReceiver


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOGWELL_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "logwell_handler", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _step(output: str, name: str) -> str:
    """The line of step `name`."""
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def test_a_good_setup_passes_every_step(logwell_receiver: LogwellReceiver) -> None:
    proc = _run(
        "check", "--endpoint", logwell_receiver.endpoint, "--api-key", logwell_receiver.api_key
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("settings", "dns", "connect", "send"):
        assert " ok " in _step(proc.stdout, name)
    assert "stored the test entry" in proc.stdout
    assert logwell_receiver.messages() == ["logwell-handler check"]


def test_settings_come_from_the_environment(logwell_receiver: LogwellReceiver) -> None:
    env = {
        "LOGWELL_ENDPOINT": logwell_receiver.endpoint,
        "LOGWELL_API_KEY": logwell_receiver.api_key,
    }
    proc = _run("check", env={**env, "LOGWELL_SERVICE": "from-env"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert logwell_receiver.entries[0]["service"] == "from-env"


def test_a_wrong_key_is_named_and_fails(logwell_receiver: LogwellReceiver) -> None:
    wrong = "lw_" + "w" * 32
    proc = _run("check", "--endpoint", logwell_receiver.endpoint, "--api-key", wrong)
    assert proc.returncode == 1
    send = _step(proc.stdout, "send")
    assert "FAIL" in send
    assert "HTTP 401" in send
    assert "API key" in send
    assert wrong not in proc.stdout + proc.stderr


def test_a_missing_key_fails_at_the_settings(logwell_receiver: LogwellReceiver) -> None:
    proc = _run("check", "--endpoint", logwell_receiver.endpoint)
    assert proc.returncode == 1
    assert "Configuration missing 'api_key'" in _step(proc.stdout, "settings")


def test_nothing_listening_fails_at_the_connection() -> None:
    with LogwellReceiver() as gone:
        endpoint = gone.endpoint
    proc = _run("check", "--endpoint", endpoint, "--api-key", "lw_" + "k" * 32)
    assert proc.returncode == 1
    assert "connection refused" in _step(proc.stdout, "connect")
    assert "send" not in proc.stdout


def test_a_rate_limited_key_says_how_long_to_wait(logwell_receiver: LogwellReceiver) -> None:
    logwell_receiver.fail_next(1, status=429, retry_after=60)
    proc = _run(
        "check", "--endpoint", logwell_receiver.endpoint, "--api-key", logwell_receiver.api_key
    )
    assert proc.returncode == 1
    assert "HTTP 429" in proc.stdout
    assert "wait 60 s" in proc.stdout


def test_an_untrusted_certificate_is_explained(
    https_receiver: tuple[LogwellReceiver, Path],
) -> None:
    receiver, _ = https_receiver
    proc = _run("check", "--endpoint", receiver.endpoint, "--api-key", receiver.api_key)
    assert proc.returncode == 1
    tls = _step(proc.stdout, "tls")
    assert "FAIL" in tls
    assert "does not trust" in tls
    assert "ca_file" in tls


def test_the_ca_file_makes_it_pass(https_receiver: tuple[LogwellReceiver, Path]) -> None:
    receiver, ca_file = https_receiver
    proc = _run(
        "check",
        "--endpoint",
        receiver.endpoint,
        "--api-key",
        receiver.api_key,
        "--ca-file",
        str(ca_file),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TLSv1." in _step(proc.stdout, "tls")


def test_the_ca_file_may_come_from_the_environment(
    https_receiver: tuple[LogwellReceiver, Path],
) -> None:
    receiver, ca_file = https_receiver
    env = {"LOGWELL_ENDPOINT": receiver.endpoint, "LOGWELL_API_KEY": receiver.api_key}
    proc = _run("check", env={**env, "LOGWELL_CA_FILE": str(ca_file)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_applications_spool_is_left_alone(
    logwell_receiver: LogwellReceiver, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    env = {"LOGWELL_ENDPOINT": logwell_receiver.endpoint, "LOGWELL_SPOOL_DIR": str(spool)}
    proc = _run("check", env={**env, "LOGWELL_API_KEY": "lw_" + "w" * 32})
    assert proc.returncode == 1
    assert not spool.exists(), "the failed test entry must not wait in the spool"


@pytest.mark.parametrize("command", [[], ["check"], ["receiver"], ["demo"]])
def test_help(command: list[str]) -> None:
    proc = _run(*command, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: logwell-handler")


def test_the_console_script_is_installed() -> None:
    script = shutil.which("logwell-handler", path=str(Path(sys.executable).parent))
    assert script is not None
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith("logwell-handler ")


def test_the_receiver_prints_its_endpoint_and_each_entry() -> None:
    command = [sys.executable, "-m", "logwell_handler", "receiver"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as receiver:
        try:
            assert receiver.stdout is not None
            endpoint = receiver.stdout.readline().strip().split("=", 1)[1]
            api_key = receiver.stdout.readline().strip().split("=", 1)[1]
            # One OTLP record, then one entry: each printed once, in the order they came.
            for protocol in ("otlp", "logwell"):
                proc = _run(
                    "check", "--endpoint", endpoint, "--api-key", api_key, "--protocol", protocol
                )
                assert proc.returncode == 0, proc.stdout
                printed = json.loads(receiver.stdout.readline())
                assert printed["message"] == "logwell-handler check"
            assert "resource" not in printed, "the second line is the entry, not the record again"
        finally:
            receiver.terminate()
