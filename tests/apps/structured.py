"""loguru and structlog shipping through LogwellHandler; docs/loguru-structlog.md shows
these functions."""

from __future__ import annotations

import io
import logging

import structlog
from loguru import logger

from logwell_handler import LogwellHandler


def add_loguru_sink(handler: LogwellHandler) -> int:
    # Any logging.Handler is a loguru sink. format="{message}" keeps loguru's own
    # decorations (time, level, location) out of the message: the entry has fields
    # for those, and the handler fills them from loguru's record.
    return logger.add(handler, format="{message}", level="DEBUG")


def configure_structlog(handler: LogwellHandler, console: io.TextIOBase) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            # Hands the event dict to logging as it is; each handler renders it.
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    # The console renders the event dict as text with ProcessorFormatter...
    console_handler = logging.StreamHandler(console)
    console_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False),
            ]
        )
    )
    # ...while LogwellHandler ships the event as the message and its keys as metadata.
    shop = logging.getLogger("shop")
    shop.setLevel(logging.INFO)
    shop.propagate = False
    shop.addHandler(console_handler)
    shop.addHandler(handler)
