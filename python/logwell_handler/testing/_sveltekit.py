"""What SvelteKit, the framework Logwell's server is built on, does around the server's
routes: its cross-site form check, how ``request.json()`` reads a body, and the form of
the reply to an error a route did not handle."""

from __future__ import annotations

import json
import re
from typing import Any, Optional

# The media types an HTML form can send. SvelteKit, which the server is built on, answers
# a cross-site POST of one of them 403 before any route runs; an API client sends no
# Origin header, so for it every such POST is cross-site.
_FORM_MEDIA_TYPES = frozenset(
    {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
        "application/x-sveltekit-formdata",
    }
)
_CSRF_MESSAGE = "Cross-site POST form submissions are forbidden"

# Stands for the HTML page SvelteKit sends for an error a route did not handle, when the
# client does not ask for JSON.
_ERROR_PAGE = (
    '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8" />'
    "<title>Internal server error</title></head>\n"
    "<body><h1>500</h1><p>Internal server error</p></body>\n</html>\n"
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> Any:
    """The body as the server's ``request.json()`` reads it: the bytes as they came
    (``Content-Encoding`` is not honoured, so a gzip body is invalid JSON), decoded as
    UTF-8 (a BOM dropped, a bad byte replaced), strict JSON (no NaN or Infinity)."""
    return json.loads(body.decode("utf-8-sig", errors="replace"), parse_constant=_refuse_constant)


# A media range's weight parameter, as in ``text/html;q=0.9``.
_Q = re.compile(r"q=\d*\.?\d+|q=\d+\.")


def _prefers_json(accept: Optional[str]) -> bool:
    """Whether an ``Accept`` header ranks ``application/json`` at least as high as
    ``text/html``, as SvelteKit decides the form of an error reply. No header counts as
    ``text/html``; ``*/*`` (what most HTTP clients send) as JSON."""
    best: dict[str, tuple[float, int, int]] = {}
    for index, part in enumerate((accept or "text/html").split(",")):
        media_range, *params = (p.strip() for p in part.split(";"))
        if "/" not in media_range:
            continue
        kind, sub = media_range.lower().split("/", 1)
        weights = [float(p[2:]) for p in params if _Q.fullmatch(p)]
        q = weights[0] if weights else 1.0
        # Higher q first, then the more specific range, then the earlier one.
        rank = (-q, (kind == "*") + (sub == "*"), index)
        for candidate in ("application/json", "text/html"):
            c_kind, c_sub = candidate.split("/")
            if kind in (c_kind, "*") and sub in (c_sub, "*"):
                best[candidate] = min(best.get(candidate, rank), rank)
    if "application/json" not in best:
        return False
    return "text/html" not in best or best["application/json"] <= best["text/html"]
