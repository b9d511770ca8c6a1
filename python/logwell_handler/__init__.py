"""Ship Python logs to a Logwell server, with the work done in Rust.

import logging
from logwell_handler import LogwellHandler

logging.getLogger().addHandler(LogwellHandler(api_key="lw_...", endpoint="https://..."))
"""

from . import _core
from ._errors import ErrorCode, LogwellError
from .client import AsyncLogwell, IngestResponse, Logwell
from .context import current_log_context, log_context
from .handler import LogwellHandler

__all__ = [
    "AsyncLogwell",
    "ErrorCode",
    "IngestResponse",
    "Logwell",
    "LogwellError",
    "LogwellHandler",
    "current_log_context",
    "log_context",
]
__version__ = _core.VERSION
