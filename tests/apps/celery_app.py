# mypy: disallow-untyped-decorators=False
"""A Celery app for the tests: prefork workers, a filesystem broker (no server needed);
docs/celery.md shows its logging setup."""

import logging
import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

app = Celery("celery_app", broker="filesystem://")
folder = os.environ["CELERY_BROKER_FOLDER"]
# Every file of the broker in that folder: kombu's control folder (exchange tables) is
# ./control by default, in whatever directory the test runs from.
app.conf.broker_transport_options = {
    "data_folder_in": folder,
    "data_folder_out": folder,
    "control_folder": os.path.join(folder, "control"),
}
app.conf.task_ignore_result = True

# Leave the root logger alone: our configuration below is the one that counts.
app.conf.worker_hijack_root_logger = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "logwell": {
            # api_key and endpoint come from LOGWELL_API_KEY and LOGWELL_ENDPOINT.
            "class": "logwell_handler.LogwellHandler",
            "service": "worker",
        },
    },
    "loggers": {
        "celery": {"handlers": ["logwell"], "level": "INFO"},
        "shop": {"handlers": ["logwell"], "level": "INFO"},
    },
}


@setup_logging.connect
def configure_logging(**kwargs: object) -> None:
    # Connecting to setup_logging tells Celery not to configure logging itself. This
    # runs in the worker's main process; the prefork pool's children inherit the
    # handler through fork, and each starts its own queue and shipping thread.
    logging.config.dictConfig(LOGGING)


log = logging.getLogger("shop.tasks")


@app.task
def charge(order: int) -> None:
    log.info("charged order %d", order, extra={"pid": os.getpid()})
