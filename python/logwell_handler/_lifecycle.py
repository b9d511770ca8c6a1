"""Process-wide duties of live handlers: drain at interpreter exit, start afresh after fork."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
import weakref
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from . import _core


class _Lifecycle(Protocol):
    shutdown_timeout: float

    def _flush_until(self, deadline: float) -> bool: ...
    def _begin_close(self, deadline: float) -> None: ...
    def _close_until(self, deadline: float) -> None: ...
    def _reset_after_fork(self) -> None: ...
    def _shipping_core(self) -> _core.Core: ...


_live: weakref.WeakSet[_Lifecycle] = weakref.WeakSet()

# Cores of the parent process, inherited by a forked child: never used, never dropped
# (dropping would touch locks and a thread that do not exist in the child).
_forked_away: list[object] = []


def keep_forked_away(core: object) -> None:
    _forked_away.append(core)


def register(owner: _Lifecycle) -> None:
    _live.add(owner)


def unregister(owner: _Lifecycle) -> None:
    _live.discard(owner)


def flush_all(timeout: float) -> bool:
    """Flushes every live handler and client against one deadline; returns whether all
    they held was delivered in time."""
    owners = list(_live)
    # A flush asks its thread to send at once, then waits: asked all first, a stalled
    # endpoint cannot leave the others no time, as waiting one after another would.
    for owner in owners:
        owner._flush_until(time.monotonic())
    deadline = time.monotonic() + timeout
    delivered = True
    for owner in owners:
        delivered = owner._flush_until(deadline) and delivered
    return delivered


def _close_all_at_exit() -> None:
    # Registered after `logging` registered its own shutdown, so this runs first (atexit
    # is last-in, first-out): every handler drains against one shared deadline instead
    # of logging.shutdown's flush() then close(), each with its own. Every shipper is
    # told the deadline before any is waited for, so they all drain at once: closed one
    # after another, one stalled endpoint would leave the others no time at all.
    owners = list(_live)
    if owners:
        deadline = time.monotonic() + max(o.shutdown_timeout for o in owners)
        for owner in owners:
            owner._begin_close(deadline)
        for owner in owners:
            owner._close_until(deadline)


def _reset_all_after_fork() -> None:
    for owner in list(_live):
        owner._reset_after_fork()


class _ExitHook:
    """multiprocessing children leave through os._exit, skipping atexit; they run
    multiprocessing's own finalizers instead. Its after-fork hooks are kept in a weak
    registry, hence an object to hold on to."""

    def arm_in_child(self) -> None:
        from multiprocessing import util

        util.Finalize(self, _close_all_at_exit, exitpriority=100)


_exit_hook = _ExitHook()
# multiprocessing's registry keeps every registration, and a forked child inherits it:
# registered once, the hook runs once in each child, and in each grandchild.
_exit_hook_registered = False


def _pause_all_before_fork() -> None:
    # Python 3.12+ warns at a fork while other threads run (an error under -W error):
    # the shipping threads stop between two cycles, keeping what they hold, and start
    # again in the parent once the fork is done. A thread busy in a request or a back-off
    # is left running (the fork then warns, as before); the child starts its own. 3.13+
    # counts threads after the after-fork hooks, so there the restarted one is counted.
    # One owner's failure (an internal error, already reported) must not keep the others
    # running, nor reach the application's fork.
    for owner in list(_live):
        with contextlib.suppress(Exception):
            owner._shipping_core().pause_for_fork()


def _resume_all_after_fork() -> None:
    for owner in list(_live):
        with contextlib.suppress(Exception):
            owner._shipping_core().resume_after_fork()


def _before_fork() -> None:
    # Registered only when the application uses multiprocessing; importing it ourselves
    # would cost every user of the handler.
    global _exit_hook_registered
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _exit_hook_registered:
        util.register_after_fork(_exit_hook, _ExitHook.arm_in_child)
        _exit_hook_registered = True
    _pause_all_before_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_resume_all_after_fork,
        after_in_child=_reset_all_after_fork,
    )
