"""The settings the handler and the client share: names, defaults, the environment, and
the checks made before the core checks ranges."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Union
from urllib.parse import unquote

from . import _core
from ._errors import LogwellError, invalid_config

# No lock: one taken by another thread at fork() would stay taken in the child. Two
# threads racing here may both warn, which is harmless.
_warned_in_clear: set[str] = set()


def _check_callbacks(**callbacks: Optional[object]) -> None:
    for name, callback in callbacks.items():
        if callback is not None and not callable(callback):
            raise invalid_config(name, f"must be callable, got {type(callback).__name__}")


def check_level(level: object) -> None:
    """Refuses what ``logging.Handler`` would refuse with a bare ValueError or TypeError:
    a level is an int or the name of one known to ``logging``."""
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise invalid_config("level", f"must be an int or a level name, got {type(level).__name__}")
    # getLevelName maps a known name to its number, and anything else to a str.
    if isinstance(level, str) and not isinstance(logging.getLevelName(level), int):
        raise invalid_config(
            "level",
            "must be an int or a level name: CRITICAL, ERROR, WARNING, INFO, DEBUG, "
            f"NOTSET or one added with logging.addLevelName(); got {level[:40]!r}",
        )


def otlp_resource(
    protocol: object, service_version: Optional[str], environment: Optional[str]
) -> Optional[dict[str, Any]]:
    """The OTLP resource attributes besides ``service.name`` and ``process.pid`` (which
    the core adds), or None for the ``logwell`` protocol, which has no resource."""
    named = (("service_version", service_version), ("environment", environment))
    for name, value in named:
        if value is not None and not isinstance(value, str):
            raise invalid_config(name, f"must be a str, got {type(value).__name__}")
    if protocol != "otlp":
        given = [name for name, value in named if value]
        if given:
            raise invalid_config(
                ", ".join(given),
                "applies to protocol='otlp' only (resource attributes); "
                "with protocol='logwell' put it in metadata=",
            )
        return None
    from . import __version__

    resource: dict[str, Any] = {
        "host.name": socket.gethostname(),
        "telemetry.sdk.name": "logwell-handler",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }
    # OpenTelemetry's variable overrides what was detected, and arguments override it;
    # its service.name is the `service` setting's (see `resolve`).
    resource.update(resource_attributes())
    resource.pop("service.name", None)
    if service_version:
        resource["service.version"] = service_version
    if environment:
        # The name Logwell and older collectors read, and the current convention's.
        resource["deployment.environment"] = environment
        resource["deployment.environment.name"] = environment
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
# Settings no text can give: no environment variable, no string form.
_CALLBACKS = ("on_error", "on_flush")
# What the handler's `client=` leaves to each handler; the client's settings apply.
PER_HANDLER = ("service", "source_path")
# Handler-only and client-only settings that may come from the environment too.
_OWN = ("level", "metadata", "use_formatter", "storm_limit", "capture_source_location")


# Settings read from the environment when not given: every one but the callbacks.
ENVIRONMENT = {
    name: f"LOGWELL_{name.upper()}" for name in (*SHARED, *_OWN) if name not in _CALLBACKS
}

# The kind of each setting that text (the environment, fileConfig's kwargs, YAML with
# substituted variables) may give; the others are str, or taken as given.
_INTS = frozenset(n for n in SHARED if type(getattr(DEFAULTS, n)) is int) | {"storm_limit"}
_FLOATS = frozenset(n for n in SHARED if type(getattr(DEFAULTS, n)) is float)
_FLAGS = frozenset({"use_formatter", "capture_source_location"})
_PAIRS = frozenset({"headers", "metadata"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_pairs(text: str, source: str) -> dict[str, str]:
    """``key=value,key2=value2`` with %-escapes in either, as OpenTelemetry's
    ``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_RESOURCE_ATTRIBUTES`` write them."""
    pairs = {}
    for number, item in enumerate(text.split(","), 1):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            # Never the item itself: it may be a header's secret with a typo.
            raise invalid_config(
                source, f"must be key=value pairs separated by commas; item {number} is not"
            )
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def from_text(name: str, value: Any, source: str) -> Any:
    """`value` of setting `name` read as its kind when it is text; anything else as
    given. `source` names where it came from in the error."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "level" and text.isdigit():
        return int(text)
    try:
        if name in _INTS:
            return int(text)
        if name in _FLOATS:
            return float(text)
    except ValueError:
        kind = "an integer" if name in _INTS else "a number"
        raise invalid_config(source, f"must be {kind}, got {text[:40]!r}") from None
    if name in _FLAGS:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise invalid_config(source, f"must be true or false (or 1/0), got {text[:40]!r}")
    if name in _PAIRS:
        return parse_pairs(text, source)
    return value


def given_or_environment(name: str, value: Any) -> Any:
    """A setting as given, else from its environment variable (the callbacks have none),
    read from text either way; None when neither. For the shared settings and for a
    handler's or client's own (`_OWN`)."""
    if value is not None:
        return from_text(name, value, name)
    raw = os.environ.get(ENVIRONMENT[name], "") if name in ENVIRONMENT else ""
    return from_text(name, raw, ENVIRONMENT[name]) if raw.strip() else None


def _otlp_environment() -> dict[str, Any]:
    """The settings OpenTelemetry's standard variables give an OTLP exporter."""
    found: dict[str, Any] = {}
    environ = os.environ
    logs_endpoint = environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip()
    base_endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    # The logs one is the URL to post to, as given; the other the base, to which the
    # core adds /v1/logs.
    if logs_endpoint:
        found["endpoint"] = logs_endpoint
        found["endpoint_is_url"] = True
    elif base_endpoint:
        found["endpoint"] = base_endpoint
    for headers in ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if environ.get(headers, "").strip():
            found["headers"] = parse_pairs(environ[headers], headers)
            break
    for timeout in ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if environ.get(timeout, "").strip():
            found["timeout"] = from_text("timeout", environ[timeout], timeout) / 1000
            break
    attributes = resource_attributes()
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or attributes.get("service.name")
    if service:
        found["service"] = service
    return found


def resource_attributes() -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``, read."""
    text = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return parse_pairs(text, "OTEL_RESOURCE_ATTRIBUTES") if text.strip() else {}


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every shared setting's value: as given, else from its ``LOGWELL_*`` variable, else
    (with protocol="otlp") from OpenTelemetry's, else the default. `given` holds the
    shared settings by name (a signature's ``locals()``); text is read as the setting's
    kind."""
    settings = {name: given_or_environment(name, given[name]) for name in SHARED}
    # Not a setting of its own: whether the endpoint is OpenTelemetry's logs URL.
    settings["endpoint_is_url"] = False
    if (settings["protocol"] or DEFAULTS.protocol) == "otlp":
        otel = _otlp_environment()
        is_url = otel.pop("endpoint_is_url", False)
        if settings["endpoint"] is None and "endpoint" in otel:
            settings["endpoint_is_url"] = is_url
        for name, value in otel.items():
            if settings[name] is None:
                settings[name] = value
    for name, value in settings.items():
        if value is None:
            settings[name] = getattr(DEFAULTS, name)
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
    # Not a shared setting: the handler and the client each pass their own over this.
    args["storm_limit"] = 0
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
