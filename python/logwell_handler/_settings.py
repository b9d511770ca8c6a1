"""Settings shared by the handler and the client: environment defaults, callback checks."""

from __future__ import annotations

import os
from typing import Any, Optional

from ._errors import ErrorCode, LogwellError


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
