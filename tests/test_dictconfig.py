from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest

from logwell_handler import LogwellHandler
from logwell_handler.testing import LogwellReceiver


@pytest.fixture
def configured_logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("dictconfig.app")
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()


def test_handler_from_dictconfig_keywords(
    configured_logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(message)s"}},
            "handlers": {
                "logwell": {
                    "class": "logwell_handler.LogwellHandler",
                    "api_key": logwell_receiver.api_key,
                    "endpoint": logwell_receiver.endpoint,
                    "service": "shop",
                    "level": "INFO",
                    "flush_interval": 0.5,
                    "metadata": {"env": "test"},
                    "formatter": "plain",
                }
            },
            "loggers": {
                "dictconfig.app": {"handlers": ["logwell"], "level": "DEBUG", "propagate": False}
            },
        }
    )
    (handler,) = configured_logger.handlers
    assert isinstance(handler, LogwellHandler)
    configured_logger.debug("below the handler's level")
    configured_logger.info("order %s placed", 17)
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    assert entry["message"] == "order 17 placed", "the formatter is not the message"
    assert entry["service"] == "shop"
    assert entry["metadata"]["env"] == "test"


def test_settings_from_environment(
    monkeypatch: pytest.MonkeyPatch,
    configured_logger: logging.Logger,
    logwell_receiver: LogwellReceiver,
) -> None:
    monkeypatch.setenv("LOGWELL_API_KEY", logwell_receiver.api_key)
    monkeypatch.setenv("LOGWELL_ENDPOINT", logwell_receiver.endpoint)
    monkeypatch.setenv("LOGWELL_SERVICE", "from-env")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"logwell": {"class": "logwell_handler.LogwellHandler"}},
            "loggers": {"dictconfig.app": {"handlers": ["logwell"], "level": "INFO"}},
        }
    )
    configured_logger.info("configured by env")
    (handler,) = configured_logger.handlers
    assert isinstance(handler, LogwellHandler)
    assert handler.flush(timeout=10)
    assert logwell_receiver.entries[0]["service"] == "from-env"
