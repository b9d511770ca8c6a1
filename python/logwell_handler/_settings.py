"""Settings shared by the handler and the client: environment defaults, callback checks."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from . import _core
from ._errors import ErrorCode, LogwellError

# No lock: one taken by another thread at fork() would stay taken in the child. Two
# threads racing here may both warn, which is harmless.
_warned_in_clear: set[str] = set()


def check_callbacks(**callbacks: Optional[object]) -> None:
    for name, callback in callbacks.items():
        if callback is not None and not callable(callback):
            raise LogwellError(
                f"invalid configuration: {name} must be callable, got {type(callback).__name__}",
                ErrorCode.INVALID_CONFIG,
            )


def core_args(
    api_key: Optional[str], endpoint: Optional[str], service: Optional[str], **settings: Any
) -> dict[str, Any]:
    """Arguments for `_core.Core`: the three connection settings fall back to
    LOGWELL_API_KEY, LOGWELL_ENDPOINT and LOGWELL_SERVICE; the core checks them all."""
    env = os.environ
    return dict(
        api_key=api_key if api_key is not None else env.get("LOGWELL_API_KEY"),
        endpoint=endpoint if endpoint is not None else env.get("LOGWELL_ENDPOINT"),
        service=service if service is not None else env.get("LOGWELL_SERVICE"),
        cwd=os.getcwd(),
        **settings,
    )


def warn_if_key_in_clear(core: _core.Core) -> None:
    """Logs one warning per URL when requests would carry the key unencrypted: plain
    http:// to a host other than loopback."""
    if not core.sends_key_in_clear:
        return
    url = core.ingest_url
    if url in _warned_in_clear:
        return
    _warned_in_clear.add(url)
    logging.getLogger("logwell_handler").warning(
        "logwell_handler: %s is plain http:// to another host; the API key travels "
        "unencrypted. Use https:// unless this network is trusted.",
        url,
    )
