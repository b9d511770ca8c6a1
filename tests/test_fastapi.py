"""FastAPI served by a real uvicorn process, with our log_config and ASGI middleware."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from logwell_handler.testing import LogwellReceiver

from conftest import receiver_env
from test_fork import wait_until_serving
from test_overflow import unused_port

APPS = Path(__file__).parent / "apps"

SERVE = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(APPS)!r})
    import uvicorn
    from fastapi_app import LOG_CONFIG

    uvicorn.run("fastapi_app:app", host="127.0.0.1", port=int(sys.argv[1]), log_config=LOG_CONFIG)
    """
)


def get(port: int, path: str, request_id: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Request-ID": request_id}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["X-Request-ID"])


def test_concurrent_requests_keep_their_own_request_ids(
    logwell_receiver: LogwellReceiver,
) -> None:
    port = unused_port()
    env = {**os.environ, **receiver_env(logwell_receiver)}
    command = [sys.executable, "-c", SERVE, str(port)]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as server:
        try:
            wait_until_serving(port)
            with ThreadPoolExecutor(10) as pool:
                echoed = list(pool.map(lambda n: get(port, f"/orders/{n}", f"rid-{n}"), range(20)))
            assert echoed == [f"rid-{n}" for n in range(20)]
            assert get(port, "/sync/7", "rid-sync") == "rid-sync"
        finally:
            server.send_signal(signal.SIGINT)
            _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr

    orders = [e for e in logwell_receiver.entries if e["message"].startswith("order ")]
    assert len(orders) == 40
    for entry in orders:
        n = entry["message"].split()[1]
        assert entry["metadata"]["request_id"] == f"rid-{n}", entry
        assert entry["metadata"]["path"] == f"/orders/{n}"
        assert entry["sourceFile"].endswith("apps/fastapi_app.py")
    (sync,) = [e for e in logwell_receiver.entries if e["message"] == "sync 7"]
    assert sync["metadata"]["request_id"] == "rid-sync"
    access = [
        e
        for e in logwell_receiver.entries
        if e["metadata"]["logger"] == "uvicorn.access" and "/orders/" in e["message"]
    ]
    assert len(access) == 20
    for entry in access:  # '127.0.0.1:5555 - "GET /orders/3 HTTP/1.1" 200'
        match = re.search(r"/orders/(\d+)", entry["message"])
        assert match, entry["message"]
        assert entry["metadata"]["request_id"] == f"rid-{match.group(1)}"
    server_logs = [
        e["message"] for e in logwell_receiver.entries if e["metadata"]["logger"] == "uvicorn.error"
    ]
    assert any(m.startswith("Started server process") for m in server_logs), server_logs
    assert any(m.startswith("Finished server process") for m in server_logs), server_logs
