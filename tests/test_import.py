"""What importing the package does to the rest of the process."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_leaves_asyncio_unloaded() -> None:
    # Once asyncio is imported, every LogRecord in the process asks it for the current
    # task (3.12+): a handler must not make other handlers' records dearer.
    script = (
        "import sys, logging, logwell_handler, logwell_handler.handler, "
        "logwell_handler.client, logwell_handler.context\n"
        "handler = logwell_handler.LogwellHandler(\n"
        "    'lw_' + 'k' * 32, 'http://127.0.0.1:9', shutdown_timeout=0\n"
        ")\n"
        "logging.getLogger('t').addHandler(handler)\n"
        "logging.getLogger('t').warning('x')\n"
        "handler.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncio'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout
