"""A Flask app for `gunicorn --preload`: the handler is made in the master, before fork."""

from __future__ import annotations

import logging
import os
import time

from flask import Flask

from logwell_handler import LogwellHandler

log = logging.getLogger("gunicorn_app")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(LogwellHandler(flush_interval=0.2))
# Queued in the master, whose flush thread is running when gunicorn forks the workers.
log.info("master loaded", extra={"pid": os.getpid()})

app = Flask(__name__)


@app.get("/hit/<int:n>")
def hit(n: int) -> str:
    time.sleep(0.02)  # a sync worker is busy meanwhile, so the other takes requests too
    log.info("request %d", n, extra={"pid": os.getpid()})
    return str(os.getpid())
