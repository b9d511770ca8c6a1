"""A WSGI app for uWSGI. The handler is made in the master, which then forks its workers
in C: Python's at-fork hooks do not run there, and each worker must still ship its own
records."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Callable

from logwell_handler import LogwellHandler

handler = LogwellHandler(flush_interval=60)
log = logging.getLogger("uwsgi_app")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
log.info("master %d loaded the app", os.getpid())


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    log.info("worker %d served a request", os.getpid())
    delivered = handler.flush(timeout=10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {delivered}".encode()]
