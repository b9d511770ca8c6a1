"""What a test can make the receiver do instead of answering as the server does.

``LogwellReceiver.fail_next`` queues a :class:`Fault` for each of the next requests; the
receiver answers it with the fault's status, body and ``Retry-After`` and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

# A reply's body: JSON, or text as it goes out.
_Body = Union[dict[str, Any], str]


@dataclass
class Fault:
    """One injected misbehaviour, used for the next request that reaches the receiver."""

    status: int = 500
    #: A dict goes out as JSON, a str as text.
    body: Optional[_Body] = None
    retry_after: Optional[float] = None
    delay: float = 0.0


_FAULT_NAMES = {401: "unauthorized", 429: "rate_limited", 400: "validation_error"}
