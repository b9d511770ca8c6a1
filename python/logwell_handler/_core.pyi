"""Stubs for the Rust extension module. Checked against it by mypy.stubtest."""

from typing import Any, Callable, Optional

from typing_extensions import final

from logwell_handler.types import Stats

__all__ = ["EMPTY_MESSAGE_PLACEHOLDER", "VERSION", "Core"]

EMPTY_MESSAGE_PLACEHOLDER: str
VERSION: str

@final
class Core:
    def __new__(
        cls,
        *,
        reserved: frozenset[str],
        cwd: str,
        on_error: Optional[Callable[[Any], None]] = None,
        on_flush: Optional[Callable[[int], None]] = None,
        **settings: Any,
    ) -> Core: ...
    def derive(
        self,
        *,
        service: Optional[object] = None,
        metadata: Optional[object] = None,
        source_path: Optional[object] = None,
        cwd: Optional[str] = None,
        reserved: Optional[frozenset[str]] = None,
    ) -> Core: ...
    def emit(
        self,
        record: object,
        formatted: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
    ) -> bool: ...
    def log_entry(
        self,
        level: object,
        message: object,
        metadata: Optional[object] = None,
        *,
        service: Optional[str] = None,
        timestamp: Optional[object] = None,
        source_file: Optional[str] = None,
        line_number: Optional[int] = None,
        call_site: Optional[tuple[str, int]] = None,
    ) -> None: ...
    def count_ignored(self) -> None: ...
    def release_summaries(self) -> None: ...
    def flush(self, timeout: float) -> bool: ...
    def begin_close(self, timeout: float) -> None: ...
    def close(self, timeout: float) -> int: ...
    def pause_for_fork(self) -> bool: ...
    def resume_after_fork(self) -> None: ...
    def server_said(self, since: int = ...) -> dict[str, Any]: ...
    def stats(self) -> Stats: ...
    @property
    def queue_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def forked(self) -> bool: ...
    @property
    def request_url(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def sends_key_in_clear(self) -> bool: ...
