"""The message on the wire is the record's own message: a formatter's level prefix or
traceback never lands in it unless asked for (``use_formatter=True``)."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path

from logwell_handler import LogwellHandler
from logwell_handler.testing import LogwellReceiver

from conftest import MakeHandler, receiver_env, run_python


def test_basicconfig_formatter_does_not_reach_the_message(
    logwell_receiver: LogwellReceiver,
) -> None:
    # basicConfig gives every handler it is handed its own "LEVEL:name:message" formatter.
    code = """
import logging
from logwell_handler import LogwellHandler

handler = LogwellHandler(flush_interval=0.2)
logging.basicConfig(level=logging.INFO, handlers=[handler])
assert handler.formatter is not None
logging.info("via basicConfig %s", "x")
try:
    1 / 0
except ZeroDivisionError:
    logging.exception("boom")
assert handler.flush(timeout=10)
"""
    proc, _ = run_python(code, env=receiver_env(logwell_receiver))
    assert proc.returncode == 0, proc.stderr
    info, error = logwell_receiver.entries
    assert info["message"] == "via basicConfig x"
    assert error["message"] == "boom"
    assert error["metadata"]["exception"]["type"] == "ZeroDivisionError"
    assert error["metadata"]["exception"]["stacktrace"].startswith("Traceback")


def test_a_dictconfig_formatter_does_not_reach_the_message(
    logwell_receiver: LogwellReceiver,
) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(message)s"}},
            "handlers": {
                "logwell": {
                    "class": "logwell_handler.LogwellHandler",
                    "api_key": logwell_receiver.api_key,
                    "endpoint": logwell_receiver.endpoint,
                    "formatter": "plain",
                }
            },
            "loggers": {"message.dict": {"handlers": ["logwell"], "propagate": False}},
        }
    )
    log = logging.getLogger("message.dict")
    (handler,) = log.handlers
    assert isinstance(handler, LogwellHandler)
    try:
        log.warning("disk %d%% full", 91)
        assert handler.flush(timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()
    (entry,) = logwell_receiver.entries
    assert entry["message"] == "disk 91% full"
    assert entry["level"] == "warn"


def test_log_exception_keeps_the_traceback_out_of_the_message(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    logger.addHandler(handler)
    try:
        {"present": 1}["missing"]
    except KeyError:
        logger.exception("lookup failed for %s", "missing")
    assert handler.flush(timeout=10)
    (entry,) = logwell_receiver.entries
    assert entry["message"] == "lookup failed for missing"
    assert entry["metadata"]["exception"]["type"] == "KeyError"


def test_use_formatter_makes_the_formatters_output_the_message(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(use_formatter=True)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.warning("formatted %s", "text")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("with traceback")
    assert handler.flush(timeout=10)
    plain, failed = logwell_receiver.messages()
    assert plain == f"[WARNING] {logger.name}: formatted text"
    assert failed.startswith(f"[ERROR] {logger.name}: with traceback\nTraceback")


def test_use_formatter_without_a_formatter_is_the_records_message(
    make_handler: MakeHandler, logger: logging.Logger, logwell_receiver: LogwellReceiver
) -> None:
    handler = make_handler(use_formatter=True)
    logger.addHandler(handler)
    logger.info("n=%d", 3)
    assert handler.flush(timeout=10)
    assert logwell_receiver.messages() == ["n=3"]


def test_use_formatter_from_fileconfig_text(
    logwell_receiver: LogwellReceiver, tmp_path: Path
) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=logwell\n[formatters]\nkeys=short\n"
        "[logger_root]\nlevel=INFO\nhandlers=logwell\n"
        "[handler_logwell]\nclass=logwell_handler.LogwellHandler\nformatter=short\n"
        "kwargs={'use_formatter': 'true', 'flush_interval': '0.2'}\n"
        "[formatter_short]\nformat=%(levelname)s %(message)s\n"
    )
    code = f"""
import json, logging, logging.config
logging.config.fileConfig({str(ini)!r})
logging.info("from ini")
(handler,) = logging.getLogger().handlers
print(json.dumps(handler.flush(timeout=10)))
"""
    proc, _ = run_python(code, env=receiver_env(logwell_receiver))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) is True
    assert logwell_receiver.messages() == ["INFO from ini"]
