"""The id the web integrations (asgi, django, flask) give each request."""

from __future__ import annotations

import uuid
from typing import Optional

# Longest request id taken from a client; longer ones are cut.
MAX_REQUEST_ID = 200


def request_id_from(header: Optional[str]) -> str:
    """The request's ``X-Request-ID`` header cut to ``MAX_REQUEST_ID`` characters, or a
    new random id when the header is missing or empty."""
    return (header or uuid.uuid4().hex)[:MAX_REQUEST_ID]
