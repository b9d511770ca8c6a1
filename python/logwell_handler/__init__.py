"""Ship Python logs to a Logwell server, with the work done in Rust.

import logging
from logwell_handler import LogwellHandler

logging.getLogger().addHandler(LogwellHandler(api_key="lw_...", endpoint="https://..."))
"""

from . import _core
from ._errors import ErrorCode, LogwellError, LogwellErrorCode
from .client import AsyncLogwell, BaseLogwell, Logwell
from .context import current_log_context, log_context
from .handler import LogwellHandler
from .serverless import flush_after
from .types import IngestResponse, LogEntry, LogLevel, LogwellConfig, Stats

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
__version__ = _core.VERSION
