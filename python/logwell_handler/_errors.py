"""The error type of logwell_handler and the codes it shares with Logwell's official SDKs."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional, Union

#: A :class:`LogwellErrorCode` as its str value.
ErrorCodeName = Literal[
    "NETWORK_ERROR",
    "UNAUTHORIZED",
    "VALIDATION_ERROR",
    "RATE_LIMITED",
    "SERVER_ERROR",
    "QUEUE_OVERFLOW",
    "INVALID_CONFIG",
    "SPOOL_ERROR",
]


class LogwellErrorCode(str, Enum):
    """What went wrong, as Logwell's official SDKs name it (``ErrorCode`` is the same
    class by a shorter name)."""

    NETWORK_ERROR = "NETWORK_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    SERVER_ERROR = "SERVER_ERROR"
    QUEUE_OVERFLOW = "QUEUE_OVERFLOW"
    INVALID_CONFIG = "INVALID_CONFIG"
    #: The disk spool could not be written or read (ours: the official SDKs have no spool).
    SPOOL_ERROR = "SPOOL_ERROR"

    def __str__(self) -> str:
        return self.value


ErrorCode = LogwellErrorCode


class LogwellError(Exception):
    """Raised for bad configuration; passed to ``on_error`` for delivery problems.

    Attributes:
        code: What went wrong (an :class:`ErrorCode`).
        status_code: The HTTP status the server answered, when there was one.
        retryable: Whether sending the same entries again may succeed.
        retry_after: Seconds the server asked us to wait (``Retry-After``), or None.
    """

    def __init__(
        self,
        message: str,
        code: Union[LogwellErrorCode, ErrorCodeName] = LogwellErrorCode.NETWORK_ERROR,
        status_code: Optional[int] = None,
        retryable: bool = False,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = ErrorCode(code)
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.message, self.code.value, self.status_code, self.retryable, self.retry_after),
        )

    def __str__(self) -> str:
        # The official SDKs' form, so that code and logs reading it move over.
        status = ""
        if self.status_code is not None and f"HTTP {self.status_code}" not in self.message:
            status = f" (HTTP {self.status_code})"
        return f"[{self.code.value}] {self.message}{status}"

    def __repr__(self) -> str:
        return (
            f"LogwellError(message={self.message!r}, code={self.code!r}, "
            f"status_code={self.status_code!r}, retryable={self.retryable!r})"
        )


def invalid_config(name: str, problem: str) -> LogwellError:
    """The error for a bad setting, worded as the core and the official SDKs word it."""
    return LogwellError(f"Invalid {name}: {problem}", ErrorCode.INVALID_CONFIG)
