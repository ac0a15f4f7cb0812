"""Which backend ``uring.asyncio`` runs on: io_uring, or a thread pool
where io_uring is blocked.

Where ``io_uring_setup`` is refused (Docker's default seccomp profile, the
``kernel.io_uring_disabled`` sysctl, a security module, an old kernel),
files (``open``, ``tempfile``), ``uring.asyncio.os``/``os.path`` and the
``sock_*`` functions run the blocking stdlib calls on the loop's default
executor, streams and servers use asyncio's own transports, and
``run``/``new_event_loop`` give asyncio's default loop.  That happens
visibly: one ``RuntimeWarning`` per process naming the cause, and
``backend()`` says which backend is in use.

The choice, made once per process on first use (one probe):

* ``URING_ASYNCIO_BACKEND=auto`` (the default): io_uring when it can be
  set up, else the threads, with the warning.
* ``URING_ASYNCIO_BACKEND=io_uring``: io_uring or nothing: where it is
  unavailable the first operation raises ``uring.UringUnavailableError``
  naming the cause.
* ``URING_ASYNCIO_BACKEND=threads``: the thread pool even where io_uring
  works (the warning names the variable as the cause).

``set_backend(mode)`` (or ``run(main, backend=mode)``) says the same from
the program and wins over the environment.  A ring given explicitly
(``ring=...``) and the ring of a ``UringEventLoop`` are always used.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
from typing import Optional

__all__ = ["ENV", "MODES", "backend", "refused_error", "set_backend", "use_threads"]

#: The environment variable read on first use.
ENV = "URING_ASYNCIO_BACKEND"
#: What it (and ``set_backend``) accepts.
MODES = ("auto", "io_uring", "threads")

_lock = threading.Lock()
_mode: Optional[str] = None      # set_backend's, else the environment's (read once)
_source = ENV                    # who asked: the environment variable or set_backend()
_decided: Optional[str] = None   # "io_uring" or "threads", once decided
_warned = False


# Code whose frames the warning skips: this package's, and asyncio's own
# (a coroutine run as a task has the event loop below it, not its caller).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep


def _user_stacklevel() -> int:
    """``warnings.warn``'s *stacklevel* from ``backend()`` for the first
    frame outside this package: the user's line that made the first
    operation (``open``, an ``os`` function, a tempfile function,
    ``run``, ...), however deep in the package it was decided.  Past
    asyncio's own frames too when a user frame lies beyond them."""
    frame = sys._getframe(1)  # noqa: SLF001 - backend()'s: stacklevel 1
    level = 1
    first_outside = 0
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not name.startswith(_PACKAGE_DIR):
            if not first_outside:
                first_outside = level
            if not name.startswith(_ASYNCIO_DIR):
                return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return first_outside or 2


def _check(mode: str, where: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode


def set_backend(mode: str) -> None:
    """Choose the backend for this process: ``"auto"`` (io_uring when it
    can be set up, else threads with a warning), ``"io_uring"`` (io_uring
    or ``UringUnavailableError``), ``"threads"`` (the thread pool).  Wins
    over ``URING_ASYNCIO_BACKEND``; takes effect for the next operation
    (rings already made on running loops keep being used by code that
    holds them)."""
    global _mode, _decided, _source
    _check(mode, "backend")
    with _lock:
        _mode = mode
        _source = f"set_backend({mode!r})"
        _decided = None


def mode() -> str:
    """The requested mode: ``set_backend``'s, else ``URING_ASYNCIO_BACKEND``'s
    (``"auto"`` when unset or empty)."""
    global _mode
    with _lock:
        if _mode is None:
            _mode = _check(os.environ.get(ENV, "").strip().lower() or "auto", ENV)
        return _mode


def backend() -> str:
    """``"io_uring"`` or ``"threads"``: what this process's files, os
    functions, sockets and streams run on.  Decided on the first call
    (``auto`` probes once whether a ring can be set up; where it cannot, one
    ``RuntimeWarning`` names the cause).  With ``io_uring`` requested this
    is ``"io_uring"`` without a probe: the first operation raises the error
    where io_uring is unavailable."""
    global _decided, _warned
    requested = mode()
    with _lock:
        if _decided is not None:
            return _decided
        if requested == "io_uring":
            _decided = requested
            return _decided
        if requested == "threads":
            cause = f"{_source} asks for the thread fallback"
            if _source == ENV:
                cause = f"{ENV}=threads asks for the thread fallback"
        else:
            from ..probe import available

            a = available()
            if a:
                _decided = "io_uring"
                return _decided
            cause = f"io_uring is unavailable ({a.cause}: {a.reason})"
        _decided = "threads"
        warn = not _warned
        _warned = True
    if warn:
        warnings.warn(
            f"uring.asyncio: {cause}; files, uring.asyncio.os and the socket functions run "
            f"on a thread pool, streams on asyncio's transports "
            f"({ENV}=io_uring or set_backend('io_uring') to get an error instead)",
            RuntimeWarning, stacklevel=_user_stacklevel())
    return "threads"


def use_threads(ring: object = None) -> bool:
    """Whether an operation takes the thread path: not with an explicit
    *ring*, nor on a loop with a ring of its own (``UringEventLoop``);
    else when ``backend()`` is ``"threads"``."""
    if ring is not None:
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None and getattr(loop, "uring", None) is not None:
        return False
    return backend() == "threads"


def refused_error(exc: BaseException) -> BaseException:
    """*exc* (a ``UringUnavailableError``) with a note that the fallback
    was refused, when ``io_uring`` was requested."""
    if mode() == "io_uring" and hasattr(exc, "add_note"):
        who = f"{ENV}=io_uring" if _source == ENV else _source
        note = f"uring.asyncio: the thread fallback is refused ({who})"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
    return exc
