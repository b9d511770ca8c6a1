"""The settings the handler and the client share: names, defaults, the environment, and
the checks made before the core checks ranges."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Union

from . import _core
from ._errors import ErrorCode, LogwellError

# No lock: one taken by another thread at fork() would stay taken in the child. Two
# threads racing here may both warn, which is harmless.
_warned_in_clear: set[str] = set()


def _check_callbacks(**callbacks: Optional[object]) -> None:
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


@dataclass(frozen=True)
class Defaults:
    """The settings the handler and the client share, by name, with what applies when
    one is not given (None) and not set in the environment (`ENVIRONMENT`) either.
    Their ranges are checked by the core, which names the one that is wrong."""

    api_key: Optional[str] = None
    endpoint: Optional[str] = None
    service: Optional[str] = None
    protocol: str = "logwell"
    headers: Optional[dict[str, str]] = None
    service_version: Optional[str] = None
    environment: Optional[str] = None
    batch_size: int = 50
    flush_interval: float = 5.0
    # The official SDKs hold 1000: their Python SDK delivered 3 % of a 100 000-record
    # burst, the rest dropped. The byte bound is what caps memory; this one sizes the
    # ring, so that a 100 000-record burst of ~250-byte entries waits whole while the
    # server takes it at its ~4 000 a second.
    max_queue_size: int = 100_000
    max_queue_bytes: int = 64 * 1024 * 1024
    # Logwell's default RATE_LIMIT_INGEST_RPM.
    max_requests_per_minute: int = 600
    max_retries: int = 3
    timeout: float = 30.0
    shutdown_timeout: float = 5.0
    max_message_bytes: int = 64 * 1024
    max_metadata_bytes: int = 64 * 1024
    ca_file: Optional[Union[str, os.PathLike[str]]] = None
    # Off unless given: where to put it is the user's call (a volume that outlives the
    # container; see docs/spool.md).
    spool_dir: Optional[Union[str, os.PathLike[str]]] = None
    max_spool_bytes: int = 256 * 1024 * 1024
    source_path: str = "relative"
    on_error: Optional[Callable[[LogwellError], None]] = None
    on_flush: Optional[Callable[[int], None]] = None


DEFAULTS = Defaults()
# The shared settings' names, in the order of the signatures and the docs.
SHARED = tuple(f.name for f in fields(Defaults))
# Settings read from the environment when not given.
ENVIRONMENT = {
    "api_key": "LOGWELL_API_KEY",
    "endpoint": "LOGWELL_ENDPOINT",
    "service": "LOGWELL_SERVICE",
    "max_requests_per_minute": "LOGWELL_MAX_REQUESTS_PER_MINUTE",
    "spool_dir": "LOGWELL_SPOOL_DIR",
}
# What the handler's `client=` leaves to each handler; the client's settings apply.
PER_HANDLER = ("service", "source_path")


def _from_environment(name: str) -> Optional[Any]:
    """The value of setting `name` from its environment variable; None when unset or empty."""
    variable = ENVIRONMENT.get(name)
    raw = os.environ.get(variable, "") if variable else ""
    if not raw.strip():
        return None
    if not isinstance(getattr(DEFAULTS, name), int):
        return raw
    try:
        return int(raw.strip())
    except ValueError:
        raise _invalid(f"{variable} must be an integer, got {raw.strip()[:40]!r}") from None


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every shared setting's value: as given, else from the environment, else the
    default. `given` holds the shared settings by name (a signature's ``locals()``)."""
    settings = {}
    for name in SHARED:
        value = given[name]
        if value is None:
            value = _from_environment(name)
        settings[name] = getattr(DEFAULTS, name) if value is None else value
    _check_callbacks(on_error=settings["on_error"], on_flush=settings["on_flush"])
    return settings


# Shared settings the core does not take as such: the resource is made of the first two,
# and each owner wraps the callbacks its own way.
_NOT_FOR_THE_CORE = frozenset({"service_version", "environment", "on_error", "on_flush"})


def core_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for `_core.Core` from `resolve`d settings, callbacks left out (each
    owner passes its own wrappers)."""
    args = {k: v for k, v in settings.items() if k not in _NOT_FOR_THE_CORE}
    args["resource"] = otlp_resource(
        settings["protocol"], settings["service_version"], settings["environment"]
    )
    args["cwd"] = os.getcwd()
    spool_dir = args["spool_dir"]
    if isinstance(spool_dir, (str, os.PathLike)) and os.fspath(spool_dir):
        # Taken from the working directory now, as a later chdir() must not move it.
        args["spool_dir"] = os.path.abspath(spool_dir)
    return args


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
