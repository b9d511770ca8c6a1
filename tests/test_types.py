"""The public API's types catch a user's mistakes under mypy --strict, and typed code
written for the official SDK moves over with an import swap."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import logwell_handler
from logwell_handler import LogwellHandler

MISTAKES = """\
from logwell_handler import ErrorCode, Logwell, LogwellError, LogwellHandler

LogwellHandler(protocol="otlpp")  # mistake
LogwellHandler(source_path="abs")  # mistake
Logwell().log({"level": "warning", "message": "x"})  # mistake
Logwell().log({"level": "warn"})  # mistake
LogwellError("x", code="NOPE")  # mistake
LogwellHandler().stats()["sent"] + "x"  # mistake
LogwellHandler().stats()["snet"]  # mistake
LogwellHandler(batch_size=[5])  # mistake
Logwell().info("x", "not a dict")  # mistake

LogwellHandler(protocol="otlp", source_path="absolute", batch_size=5)
Logwell().log({"level": "warn", "message": "x", "lineNumber": 3})
LogwellError("x", code="RATE_LIMITED")
LogwellError("x", code=ErrorCode.RATE_LIMITED)
sent: int = LogwellHandler().stats()["sent"]
last = LogwellHandler().stats()["last_error"]
code = last["code"] if last else None
"""

# Written for the official SDK (its README's typed example); only the imports differ.
MOVED_OVER = """\
import asyncio
from typing import Optional

from logwell_handler import AsyncLogwell as Logwell
from logwell_handler import LogwellError, LogwellErrorCode
from logwell_handler.types import IngestResponse, LogEntry, LogLevel, LogwellConfig

config: LogwellConfig = {"api_key": "lw_" + "a" * 32, "endpoint": "https://logs.example.com"}
level: LogLevel = "warn"
entry: LogEntry = {"level": level, "message": "hello", "metadata": {"k": 1}}


async def main() -> None:
    client = Logwell(config)
    client.log(entry)
    response: Optional[IngestResponse] = await client.flush()
    if response is not None:
        print(response["accepted"], response.get("rejected", 0))
    try:
        await client.shutdown()
    except LogwellError as e:
        if e.code == LogwellErrorCode.NETWORK_ERROR:
            print(e.status_code, e.retryable)


asyncio.run(main())
"""


def _mypy(tmp_path: Path, source: str) -> list[str]:
    script = tmp_path / "script.py"
    script.write_text(source)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    return [line for line in proc.stdout.splitlines() if ": error:" in line]


@pytest.mark.timeout(300)  # a cold mypy --strict, on a slow interpreter
def test_mypy_strict_catches_each_mistake_and_nothing_else(tmp_path: Path) -> None:
    errors = _mypy(tmp_path, MISTAKES)
    flagged = {int(m[1]) for e in errors if (m := re.match(r"script\.py:(\d+):", e))}
    lines = MISTAKES.splitlines()
    mistakes = {n for n, line in enumerate(lines, 1) if line.endswith("# mistake")}
    assert flagged == mistakes, "\n".join(errors)


@pytest.mark.timeout(300)  # a cold mypy --strict, on a slow interpreter
def test_typed_code_for_the_official_sdk_checks_with_an_import_swap(tmp_path: Path) -> None:
    assert _mypy(tmp_path, MOVED_OVER) == []


def test_stats_lists_every_counter_the_core_keeps() -> None:
    handler = LogwellHandler(api_key="lw_" + "k" * 32, endpoint="http://127.0.0.1:9")
    try:
        counters = set(handler.stats())
    finally:
        handler.close()
    assert counters == set(logwell_handler.Stats.__annotations__)


@pytest.mark.parametrize(
    "call",
    [
        lambda: logwell_handler.Logwell(foo=1),  # type: ignore[call-arg]
        lambda: logwell_handler.AsyncLogwell("lw_" + "k" * 32, "http://h", "s", 4),  # type: ignore[call-arg, arg-type]
        lambda: logwell_handler.Logwell("lw_" + "k" * 32, "http://h").info(),  # type: ignore[call-arg]
    ],
)
def test_errors_never_name_a_private_class(call: object) -> None:
    with pytest.raises(TypeError) as info:
        call()  # type: ignore[operator]
    assert not re.search(r"\b_\w+\.", str(info.value)), str(info.value)
