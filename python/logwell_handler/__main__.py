"""``python -m logwell_handler`` (also the ``logwell-handler`` command): ``check``,
``receiver`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from . import __version__

_SETTINGS_HELP = (
    "Settings not given as flags come from the environment, as for the handler: "
    "LOGWELL_API_KEY, LOGWELL_ENDPOINT and the other LOGWELL_* variables, and "
    "OpenTelemetry's OTEL_EXPORTER_OTLP_* with --protocol otlp."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logwell-handler",
        description="Tools for logwell-handler: check a setup, run a local receiver, run the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="why are my logs not arriving? try each step with your settings",
        description="Sends one test entry with the handler's settings and reports each step: "
        "the settings, DNS, the TCP connection, TLS and the server's answer. Exits 0 only "
        "when the server stored the entry. " + _SETTINGS_HELP,
    )
    check.add_argument("--endpoint", help="the server's base URL (default: LOGWELL_ENDPOINT)")
    check.add_argument("--api-key", help="the project's key (default: LOGWELL_API_KEY)")
    check.add_argument("--service", help="the service name (default: LOGWELL_SERVICE)")
    check.add_argument("--protocol", choices=["logwell", "otlp"], help="default: logwell")
    check.add_argument("--ca-file", help="PEM file of CA certificates to trust")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds each step may take (default 10)"
    )

    receiver = commands.add_parser(
        "receiver",
        help="run a local Logwell-compatible receiver and print what it gets",
        description="Runs logwell_handler.testing.LogwellReceiver in the foreground: prints "
        "its endpoint and key, then each entry it accepts as one JSON line, until Ctrl-C.",
    )
    receiver.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    receiver.add_argument("--port", type=int, default=0, help="default: a free port")
    receiver.add_argument("--api-key", help="the key it takes (default: a random one)")

    commands.add_parser(
        "demo",
        help="ship a few records and print what the server accepted",
        description="Logs a few records through LogwellHandler to LOGWELL_ENDPOINT with "
        "LOGWELL_API_KEY, or to a local receiver when those are not set.",
    )
    return parser


def _check(args: argparse.Namespace) -> int:
    from .check import FLAGS, run

    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    return run(given, args.timeout, sys.stdout)


def _receiver(args: argparse.Namespace) -> int:
    from .testing import LogwellReceiver

    with LogwellReceiver(args.api_key, args.host, port=args.port) as receiver:
        print(f"LOGWELL_ENDPOINT={receiver.endpoint}")
        print(f"LOGWELL_API_KEY={receiver.api_key}", flush=True)
        shown = {"entries": 0, "log_records": 0}  # each list grows on its own
        try:
            while True:
                receiver.wait_for(sum(shown.values()) + 1, timeout=0.5)
                for kind in shown:
                    arrived = getattr(receiver, kind)[shown[kind] :]
                    for entry in arrived:
                        print(json.dumps(entry, default=str), flush=True)
                    shown[kind] += len(arrived)
        except KeyboardInterrupt:
            return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command == "receiver":
        return _receiver(args)
    from .demo import main as demo

    return demo([])


if __name__ == "__main__":
    sys.exit(main())
