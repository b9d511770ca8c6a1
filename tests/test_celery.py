"""A Celery worker with the prefork pool: task logs arrive from the child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import receiver_env

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def celery_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CELERY_BROKER_FOLDER", str(tmp_path))
    monkeypatch.syspath_prepend(str(APPS))
    import celery_app

    yield celery_app
    sys.modules.pop("celery_app", None)


def test_task_logs_arrive_from_prefork_children(
    celery_app: Any, logwell_receiver: LogwellReceiver, tmp_path: Path
) -> None:
    env = {**os.environ, **receiver_env(logwell_receiver), "PYTHONPATH": str(APPS)}
    command = [sys.executable, "-m", "celery", "-A", "celery_app", "worker"]
    command += ["--pool=prefork", "--concurrency=2", "--loglevel=INFO"]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    with subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,  # whatever else the worker writes stays out of the checkout
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            for n in range(20):
                celery_app.charge.delay(n)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if sum(m.startswith("charged") for m in logwell_receiver.messages()) >= 20:
                    break
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr[-3000:]
    charged = [e for e in logwell_receiver.entries if e["message"].startswith("charged")]
    assert sorted(e["message"] for e in charged) == sorted(
        f"charged order {n}" for n in range(20)
    ), "each task's record exactly once"
    pids = {e["metadata"]["pid"] for e in charged}
    assert worker.pid not in pids, "logged in the pool's children, not the main process"
    assert all(e["service"] == "worker" for e in charged)
    celery_own = [
        e for e in logwell_receiver.entries if e["metadata"]["logger"].startswith("celery")
    ]
    assert celery_own, "Celery's own logs are shipped too"
    assert (tmp_path / "control").is_dir(), "the broker kept its tables with its messages"
