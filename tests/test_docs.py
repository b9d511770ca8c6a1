"""Configuration blocks in docs/ are copies of tested code: they cannot drift from it.

A block is tied to its source by a comment on the line before it:
``<!-- from tests/django_project/settings.py -->``. The block must appear in that file
verbatim.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MARKED_BLOCK = re.compile(r"<!-- from (\S+) -->\n```\w*\n(.*?)```", re.S)
PAGES = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_marked_blocks_are_verbatim_copies_of_tested_code(page: Path) -> None:
    for source, block in MARKED_BLOCK.findall(page.read_text()):
        assert block in (ROOT / source).read_text(), f"{page.name}: block drifted from {source}"


def test_every_framework_page_shows_tested_code() -> None:
    for name in ["django.md", "flask.md", "fastapi.md", "loguru-structlog.md"]:
        assert MARKED_BLOCK.search((ROOT / "docs" / name).read_text()), name
