"""Ship Python logs to a Logwell server, with the work done in Rust.

import logging
from logwell_handler import LogwellHandler

logging.getLogger().addHandler(LogwellHandler(api_key="lw_...", endpoint="https://..."))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._errors import ErrorCode, LogwellError, LogwellErrorCode
    from .client import AsyncLogwell, BaseLogwell, Logwell
    from .context import current_log_context, log_context
    from .handler import LogwellHandler
    from .serverless import flush_after
    from .types import IngestResponse, LogEntry, LogLevel, LogwellConfig, Stats

    __version__: str

__all__ = [
    "AsyncLogwell",
    "BaseLogwell",
    "ErrorCode",
    "IngestResponse",
    "LogEntry",
    "LogLevel",
    "Logwell",
    "LogwellConfig",
    "LogwellError",
    "LogwellErrorCode",
    "LogwellHandler",
    "Stats",
    "current_log_context",
    "flush_after",
    "log_context",
]

# Where each public name lives. They are imported on first use, not with the package:
# the pytest plugin (the package's entry point, which pytest imports in every session of
# an environment that has it) must not load the extension or register fork hooks in
# sessions that never log through it.
_HOMES = {
    "AsyncLogwell": "client",
    "BaseLogwell": "client",
    "ErrorCode": "_errors",
    "IngestResponse": "types",
    "LogEntry": "types",
    "LogLevel": "types",
    "Logwell": "client",
    "LogwellConfig": "types",
    "LogwellError": "_errors",
    "LogwellErrorCode": "_errors",
    "LogwellHandler": "handler",
    "Stats": "types",
    "current_log_context": "context",
    "flush_after": "serverless",
    "log_context": "context",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = importlib.import_module("._core", __name__).VERSION
    elif name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__, "__version__"])
