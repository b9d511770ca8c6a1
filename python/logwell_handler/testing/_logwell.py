"""What Logwell's server takes: the key's form, a batch's size, the shape of a /v1/ingest
entry, and the text its database refuses to store (on either route)."""

from __future__ import annotations

import re
from typing import Any, Optional

MAX_BATCH = 100
LEVELS = frozenset({"debug", "info", "warn", "error", "fatal"})
_KEY = re.compile(r"^lw_[A-Za-z0-9_-]{32}$")


def validate_entry(entry: Any) -> Optional[str]:
    """The server's per-entry check: None when valid, else the reason."""
    if not isinstance(entry, dict):
        return "must be an object"
    if entry.get("level") not in LEVELS:
        return f"level must be one of {sorted(LEVELS)}, got {entry.get('level')!r}"
    message = entry.get("message")
    if not isinstance(message, str) or not message.strip():
        return "message is required and must be a non-empty string"
    for name in ("timestamp", "service", "sourceFile"):
        if name in entry and not isinstance(entry[name], str):
            return f"{name} must be a string"
    if "metadata" in entry and not isinstance(entry["metadata"], dict):
        return "metadata must be an object"
    if "lineNumber" in entry:
        line = entry["lineNumber"]
        if isinstance(line, bool) or not isinstance(line, (int, float)) or line <= 0:
            return "lineNumber must be a positive integer"
    return None


def _has_nul(value: Any) -> bool:
    """Whether a U+0000 is in ``value``: a str, or any key or value of a dict or list at
    any depth. PostgreSQL stores no NUL in text or jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
