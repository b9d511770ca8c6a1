"""Every code block in docs/ and the README runs in a test, is a verbatim copy of tested
code, or says it is a fragment.

A block is tied to what checks it by a comment on the line before it:

- ``<!-- from tests/django_project/settings.py -->``: the block appears verbatim in that
  file, which the tests run;
- ``<!-- pytest -->``: a test file, run with pytest (the package's fixtures loaded);
- ``<!-- fragment -->``: an excerpt that cannot run alone (a signature, a shell command
  for the reader's machine, a platform's config file);
- no comment, Python: the block runs here as a script in an empty directory, with
  ``LOGWELL_API_KEY`` and ``LOGWELL_ENDPOINT`` pointing at a local receiver, and must
  exit 0 within a minute.

``text`` and ``json`` blocks show output and data, not code; every other block says its
language.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from logwell_handler.testing import LogwellReceiver

from conftest import receiver_env

ROOT = Path(__file__).parent.parent
FENCE = re.compile(r"(?:<!-- (from \S+|fragment|pytest) -->\n)?```(\w*)\n(.*?)```", re.S)
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
NOT_CODE = {"text", "json"}


class Block(NamedTuple):
    page: str
    line: int
    mark: str
    language: str
    code: str


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start(2)) + 1
            # A block in a list item is indented with it.
            found.append(Block(page.name, line, m[1] or "", m[2], textwrap.dedent(m[3])))
    return found


BLOCKS = _blocks()
RUN: dict[str, list[Block]] = {}
for _block in BLOCKS:
    if _block.language == "python" and not _block.mark:
        RUN.setdefault(_block.page, []).append(_block)
COPIES = [b for b in BLOCKS if b.mark.startswith("from ")]
TEST_FILES = [b for b in BLOCKS if b.mark == "pytest"]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}" for b in BLOCKS])
def test_every_block_says_how_it_is_checked(block: Block) -> None:
    assert block.language, f"{block.page}:{block.line}: say the block's language"
    if block.language not in NOT_CODE and block.language != "python":
        assert block.mark, f"{block.page}:{block.line}: a {block.language} block is a fragment"


@pytest.mark.parametrize("block", COPIES, ids=[f"{b.page}:{b.line}" for b in COPIES])
def test_marked_blocks_are_verbatim_copies_of_tested_code(block: Block) -> None:
    source = block.mark[len("from ") :]
    assert block.code in (ROOT / source).read_text(), f"{block.page}:{block.line} drifted"


# The docs' placeholders, and what they stand for in the test.
def _placeholders(receiver: LogwellReceiver) -> dict[str, str]:
    return {
        "https://logs.example.com": receiver.endpoint,
        '"lw_..."': f'"{receiver.api_key}"',
        "lw_0123456789abcdef0123456789abcdef": receiver.api_key,
    }


@pytest.mark.parametrize("page", sorted(RUN), ids=sorted(RUN))
def test_python_blocks_run(page: str, logwell_receiver: LogwellReceiver, tmp_path: Path) -> None:
    # The blocks of a page run as one script, in order, as a reader would follow them.
    code = "\n".join(f"# line {b.line}\n{b.code}" for b in RUN[page])
    for placeholder, value in _placeholders(logwell_receiver).items():
        code = code.replace(placeholder, value)
    script = tmp_path / "page.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**_clean_environment(), **receiver_env(logwell_receiver)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{page}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    # A block that logs into the void would still exit 0: what it sent must have landed.
    assert "logwell_handler:" not in proc.stderr, proc.stderr
    refused = [r.status for r in logwell_receiver.requests if r.status >= 300]
    assert not refused, f"{page}: the receiver answered {refused}"


@pytest.mark.parametrize("block", TEST_FILES, ids=[f"{b.page}:{b.line}" for b in TEST_FILES])
def test_test_files_pass_under_pytest(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_block.py").write_text(block.code)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_block.py"],
        cwd=tmp_path,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{block.page}:{block.line}\n{proc.stdout}{proc.stderr}"
    assert re.search(r"\b[1-9]\d* passed", proc.stdout), proc.stdout


def _clean_environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("LOGWELL_", "OTEL_"))}


def test_every_framework_page_shows_tested_code() -> None:
    for name in ["django.md", "flask.md", "fastapi.md", "loguru-structlog.md"]:
        assert any(b.page == name for b in COPIES), name
