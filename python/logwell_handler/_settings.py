"""Settings shared by the handler and the client: environment defaults, callback checks."""

from __future__ import annotations

import logging
import os
import socket
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


def _invalid(message: str) -> LogwellError:
    return LogwellError(f"invalid configuration: {message}", ErrorCode.INVALID_CONFIG)


def check_level(level: object) -> None:
    """Refuses what ``logging.Handler`` would refuse with a bare ValueError or TypeError:
    a level is an int or the name of one known to ``logging``."""
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise _invalid(f"level must be an int or a level name, got {type(level).__name__}")
    # getLevelName maps a known name to its number, and anything else to a str.
    if isinstance(level, str) and not isinstance(logging.getLevelName(level), int):
        raise _invalid(
            "level must be an int or a level name: CRITICAL, ERROR, WARNING, INFO, DEBUG, "
            f"NOTSET or one added with logging.addLevelName(); got {level[:40]!r}"
        )


def otlp_resource(
    protocol: object, service_version: Optional[str], environment: Optional[str]
) -> Optional[dict[str, Any]]:
    """The OTLP resource attributes besides ``service.name`` and ``process.pid`` (which
    the core adds), or None for the ``logwell`` protocol, which has no resource."""
    named = (("service_version", service_version), ("environment", environment))
    for name, value in named:
        if value is not None and not isinstance(value, str):
            raise _invalid(f"{name} must be a str, got {type(value).__name__}")
    if protocol != "otlp":
        given = [name for name, value in named if value]
        if given:
            raise _invalid(
                f"{', '.join(given)} applies to protocol='otlp' only (resource attributes); "
                "with protocol='logwell' put it in metadata="
            )
        return None
    from . import __version__

    resource: dict[str, Any] = {}
    if service_version:
        resource["service.version"] = service_version
    if environment:
        # The name Logwell and older collectors read, and the current convention's.
        resource["deployment.environment"] = environment
        resource["deployment.environment.name"] = environment
    resource.update(
        {
            "host.name": socket.gethostname(),
            "telemetry.sdk.name": "logwell-handler",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": __version__,
        }
    )
    return resource


def _env_int(name: str) -> Optional[int]:
    """An integer from the environment variable ``name``; None when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _invalid(f"{name} must be an integer, got {raw[:40]!r}") from None


def core_args(
    api_key: Optional[str],
    endpoint: Optional[str],
    service: Optional[str],
    *,
    protocol: str = "logwell",
    service_version: Optional[str] = None,
    environment: Optional[str] = None,
    **settings: Any,
) -> dict[str, Any]:
    """Arguments for `_core.Core`: the three connection settings fall back to
    LOGWELL_API_KEY, LOGWELL_ENDPOINT and LOGWELL_SERVICE, and max_requests_per_minute to
    LOGWELL_MAX_REQUESTS_PER_MINUTE; the core checks them all."""
    env = os.environ
    if settings.get("max_requests_per_minute") is None:
        settings["max_requests_per_minute"] = _env_int("LOGWELL_MAX_REQUESTS_PER_MINUTE")
    return dict(
        api_key=api_key if api_key is not None else env.get("LOGWELL_API_KEY"),
        endpoint=endpoint if endpoint is not None else env.get("LOGWELL_ENDPOINT"),
        service=service if service is not None else env.get("LOGWELL_SERVICE"),
        cwd=os.getcwd(),
        protocol=protocol,
        resource=otlp_resource(protocol, service_version, environment),
        **settings,
    )


def warn_if_key_in_clear(core: _core.Core) -> None:
    """Logs one warning per URL when requests would carry the key unencrypted: plain
    http:// to a host other than loopback."""
    if not core.sends_key_in_clear:
        return
    url = core.request_url
    if url in _warned_in_clear:
        return
    _warned_in_clear.add(url)
    logging.getLogger("logwell_handler").warning(
        "logwell_handler: %s is plain http:// to another host; the API key travels "
        "unencrypted. Use https:// unless this network is trusted.",
        url,
    )
