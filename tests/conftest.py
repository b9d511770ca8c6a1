from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import trustme

from logwell_handler import LogwellHandler
from logwell_handler.testing import LogwellReceiver
from logwell_handler.types import LastError, Stats

MakeHandler = Callable[..., LogwellHandler]

CHECKOUT = Path(__file__).resolve().parent.parent


def checkout_status() -> Optional[set[str]]:
    """The paths `git status` lists in the checkout: changed, untracked and ignored ones;
    None when git or the repository is not there."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        status = subprocess.run(
            [git, "status", "--porcelain", "-z", "--ignored=matching", "-unormal", "--", "."],
            cwd=CHECKOUT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # Python's and pytest's own caches are not the tests' doing.
    caches = ("__pycache__", ".pytest_cache")
    paths = {e[3:] for e in os.fsdecode(status).split("\0") if e[2:3] == " "}
    return {p for p in paths if not any(c in Path(p).parts for c in caches)}


@pytest.fixture(scope="session", autouse=True)
def checkout_left_alone() -> Iterator[None]:
    """Fails the run if the tests wrote into the checkout, ignored paths included: what
    they write belongs under tmp_path."""
    before = checkout_status()
    yield
    if before is None:
        return
    after = checkout_status()
    new = sorted((after or set()) - before)
    if new:
        pytest.fail(f"the tests changed the checkout (write under tmp_path instead): {new}")


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[LogwellReceiver, Path]]:
    """A receiver serving https with a certificate from a throwaway CA, and that CA."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with LogwellReceiver(ssl_context=context) as receiver:
        yield receiver, ca_file


@pytest.fixture
def make_handler(logwell_receiver: LogwellReceiver) -> Iterator[MakeHandler]:
    """Builds handlers pointed at the test's receiver; closes them after the test."""
    made: list[LogwellHandler] = []

    def make(**kwargs: Any) -> LogwellHandler:
        kwargs.setdefault("api_key", logwell_receiver.api_key)
        kwargs.setdefault("endpoint", logwell_receiver.endpoint)
        kwargs.setdefault("flush_interval", 0.2)
        handler = LogwellHandler(**kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger of its own, at DEBUG, not propagating to the root."""
    log = logging.getLogger(f"test.{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)


@pytest.fixture
def shipping(
    make_handler: MakeHandler, logger: logging.Logger
) -> tuple[LogwellHandler, logging.Logger]:
    """A default handler attached to a fresh logger."""
    handler = make_handler(service="tests")
    logger.addHandler(handler)
    return handler, logger


def run_python(
    code: str, *args: str, env: dict[str, str], timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs `code` in a fresh interpreter with `env` added; returns it and its wall time."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - start


def last_error(stats: Stats) -> LastError:
    """The latest problem of `stats`, which the test expects there is."""
    error = stats["last_error"]
    assert error is not None, stats
    return error


def receiver_env(receiver: LogwellReceiver) -> dict[str, str]:
    """The environment that points a child process's handlers at `receiver`."""
    return {"LOGWELL_ENDPOINT": receiver.endpoint, "LOGWELL_API_KEY": receiver.api_key}


def line_of(path: Path, text: str) -> int:
    """The number of the first line of `path` that contains `text`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)
