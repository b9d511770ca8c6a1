"""What importing the package does to the rest of the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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


def test_a_pytest_session_that_uses_no_fixture_loads_neither_extension_nor_hooks(
    tmp_path: Path,
) -> None:
    # The plugin is the package's entry point: pytest imports it in every session of an
    # environment where the package is installed.
    (tmp_path / "test_other.py").write_text(
        "import sys\n"
        "def test_untouched():\n"
        "    assert 'logwell_handler.pytest_plugin' in sys.modules\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('logwell_handler.'))\n"
        "    assert loaded == ['logwell_handler.pytest_plugin'], loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_package_names_load_on_first_use() -> None:
    script = (
        "import sys, logwell_handler\n"
        "assert 'logwell_handler._core' not in sys.modules\n"
        "print(logwell_handler.LogwellHandler.__module__, logwell_handler.__version__,\n"
        "      'logwell_handler._core' in sys.modules, sorted(set(dir(logwell_handler))\n"
        "      & {'Logwell', 'flush_after', '__version__'}))\n"
        "try:\n"
        "    logwell_handler.Missing\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    first, second = done.stdout.splitlines()
    assert first.startswith("logwell_handler.handler ")
    assert first.endswith(" True ['Logwell', '__version__', 'flush_after']")
    assert second == "module 'logwell_handler' has no attribute 'Missing'"
