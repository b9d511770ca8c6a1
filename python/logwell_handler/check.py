"""``python -m logwell_handler check``: why are my logs not arriving?

Reads the settings the handler reads (arguments, else ``LOGWELL_*``, else OpenTelemetry's
variables for OTLP), then walks the path one step at a time: the settings, DNS, the TCP
connection, TLS, and one test entry sent through the handler itself. Each step says what
it found, or what is wrong and what to do about it. The exit status is 0 only when the
server stored the entry."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TextIO
from urllib.parse import urlsplit

from ._errors import LogwellError
from ._settings import SHARED, resolve
from .handler import LogwellHandler

#: The settings ``check`` takes as flags; the rest come from the environment as usual.
FLAGS = ("api_key", "endpoint", "service", "protocol", "ca_file")


class StepFailed(Exception):
    """A step found a problem: ``str()`` says what and what to do."""


@dataclass
class Target:
    url: str
    host: str
    port: int
    tls: bool
    #: The CA file the handler trusts (``ca_file``, else ``LOGWELL_CA_FILE``), if any.
    ca_file: Optional[str]


def _explain_certificate(error: ssl.SSLCertVerificationError, host: str) -> str:
    reason = error.verify_message or str(error)
    if "self-signed" in reason or "unable to get local issuer" in reason:
        why = (
            "the certificate is signed by a CA this machine does not trust (a private CA or "
            "a self-signed certificate): pass its CA as ca_file= (LOGWELL_CA_FILE, or "
            "--ca-file here)"
        )
    elif "expired" in reason:
        why = "the certificate has expired: renew it on the server"
    elif "match" in reason or "mismatch" in reason:
        why = f"the certificate is not for {host}: use the host name it was issued for"
    else:
        why = "the certificate could not be verified"
    return f"{why} ({reason})"


def check_settings(given: dict[str, Any]) -> tuple[LogwellHandler, Target]:
    """A handler made from `given` as the application would make it, and where it sends."""
    try:
        # One try, no pacing, and not the application's spool: the answer is the point.
        handler = LogwellHandler(**given, max_retries=0, max_requests_per_minute=0, spool_dir="")
        ca_file = resolve({name: given.get(name) for name in SHARED})["ca_file"]
    except LogwellError as e:
        raise StepFailed(e.message) from None
    url = handler._core.request_url
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    return handler, Target(url, parts.hostname or "", port, tls, ca_file and os.fspath(ca_file))


def check_dns(target: Target) -> list[str]:
    try:
        ipaddress.ip_address(target.host)
        return [target.host]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise StepFailed(
            f"cannot resolve {target.host} ({e.strerror}): check the endpoint's host name, "
            "and this machine's DNS"
        ) from None
    return sorted({str(info[4][0]) for info in found})


def check_connect(target: Target, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((target.host, target.port), timeout=timeout)
    except ConnectionRefusedError:
        raise StepFailed(
            f"nothing listens on {target.host}:{target.port} (connection refused): is the "
            "server running, and is the port right?"
        ) from None
    except socket.timeout:
        raise StepFailed(
            f"no answer from {target.host}:{target.port} in {timeout:g} s: a firewall, or "
            "the wrong address"
        ) from None
    except OSError as e:
        raise StepFailed(f"cannot connect to {target.host}:{target.port}: {e}") from None


def check_tls(target: Target, sock: socket.socket, ca_file: Optional[str]) -> str:
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with context.wrap_socket(sock, server_hostname=target.host) as tls:
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as e:
        raise StepFailed(_explain_certificate(e, target.host)) from None
    except (ssl.SSLError, OSError) as e:
        raise StepFailed(f"the TLS handshake failed: {e}") from None
    issuer = dict(x[0] for x in cert.get("issuer", ()))  # type: ignore[misc]
    by = issuer.get("organizationName") or issuer.get("commonName", "?")
    return f"{version}, certificate issued by {by}, valid until {cert.get('notAfter', '?')}"


# What to do about each status the server may answer.
_ADVICE = {
    400: "the server refused the entry as invalid: a proxy may be rewriting the body",
    401: "the server refused the key: use the project's API key from Logwell's settings "
    "(LOGWELL_API_KEY)",
    403: "refused before the ingest route, as a cross-site form post: something between "
    "here and the server changed the request's Content-Type",
    404: "no ingest route at this URL: the endpoint should be the server's base URL "
    "(https://logs.example.com), or end in /v1/ingest",
    413: "the request is too large for the server or a proxy in front of it",
    415: "the server does not take this media type: OTLP goes as JSON only",
    429: "rate limited: the key's request budget is spent (the server's "
    "RATE_LIMIT_INGEST_RPM); set max_requests_per_minute to it",
}


def check_delivery(handler: LogwellHandler, timeout: float) -> str:
    errors: list[LogwellError] = []
    handler.on_error = errors.append
    record = logging.LogRecord(
        "logwell_handler.check", logging.INFO, __file__, 1, "logwell-handler check", (), None
    )
    handler.handle(record)
    handler.flush(timeout=timeout)
    stats = handler.stats()
    if stats["sent"] == 1:
        return "the server stored the test entry"
    if stats["rate_limited_waits"]:
        # A 429 is waited out, not reported as an error.
        wait = stats["rate_limited_wait_ms"] / 1000
        raise StepFailed(f"HTTP 429: {_ADVICE[429]}; it asks to wait {wait:g} s")
    if not errors:
        raise StepFailed(f"no answer in {timeout:g} s")
    error = errors[-1]
    advice = _ADVICE.get(error.status_code or 0)
    if advice is None and (error.status_code or 0) >= 500:
        advice = "the server failed: its own logs say why"
    asked = f"; it asks to wait {error.retry_after:g} s" if error.retry_after else ""
    raise StepFailed(f"{advice}: {error}{asked}" if advice else f"{error}{asked}")


def run(given: dict[str, Any], timeout: float, out: TextIO) -> int:
    """Runs every step, printing each; returns the exit status."""

    def step(name: str, action: Callable[[], str]) -> bool:
        start = time.monotonic()
        try:
            found = action()
        except StepFailed as e:
            print(f"  {name:<9} FAIL  {e}", file=out)
            return False
        ms = (time.monotonic() - start) * 1000
        print(f"  {name:<9} ok    {found} ({ms:.0f} ms)", file=out)
        return True

    print("logwell-handler check", file=out)
    made: dict[str, Any] = {}

    def settings() -> str:
        made["handler"], made["target"] = check_settings(given)
        core = made["handler"]._core
        return f"{core.request_url} (protocol {core.protocol})"

    if not step("settings", settings):
        return 1
    handler: LogwellHandler = made["handler"]
    target: Target = made["target"]
    try:
        if not step("dns", lambda: f"{target.host} -> {', '.join(check_dns(target))}"):
            return 1

        def connect() -> str:
            made["socket"] = check_connect(target, timeout)
            return f"{target.host}:{target.port}"

        if not step("connect", connect):
            return 1
        sock: socket.socket = made["socket"]
        if target.tls:
            if not step("tls", lambda: check_tls(target, sock, target.ca_file)):
                return 1
        else:
            sock.close()
        if not step("send", lambda: check_delivery(handler, timeout)):
            return 1
        return 0
    finally:
        handler.close()
