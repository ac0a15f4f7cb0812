"""Exceptions, and the mapping from a kernel errno to the right ``OSError``.

The kernel reports failure two ways: a system call returns ``-errno``
(``io_uring_setup``, ``io_uring_enter``, ``io_uring_register``), or a
completion carries ``res = -errno`` for one request.  Both are turned into
``OSError(errno, message)``; ``OSError``'s constructor picks the subclass
(``FileNotFoundError`` for ``ENOENT``, ``InterruptedError`` for ``EINTR``,
...), and the message names the call or the operation and its target, so the
traceback says *what* failed, not only *how*.

Errors we can see coming are raised before anything reaches the kernel, as
ordinary Python exceptions (``TypeError``/``ValueError`` subclasses below).
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional

__all__ = [
    "RingClosedError",
    "RingForkedError",
    "RingThreadError",
    "SubmissionQueueFull",
    "UnsupportedOperation",
    "UringUnavailableError",
    "kernel_error",
]


def kernel_error(err: int, what: str, target: Optional[object] = None) -> OSError:
    """Build the ``OSError`` subclass for ``errno`` *err*, naming *what* failed.

    *what* is a system call (``"io_uring_enter"``) or an operation
    (``"IORING_OP_READ"``); *target* (a path, fd, address) is put in the
    exception's ``filename`` slot when given, as ``open()`` does.
    """
    message = f"{what}: {os.strerror(err)}"
    if target is None:
        return OSError(err, message)
    return OSError(err, message, str(target))


class UringUnavailableError(OSError):
    """io_uring cannot be used in this process; the message says why and what to do.

    Raised by ``Ring()`` when ``io_uring_setup`` itself is refused, which is
    never a problem with the arguments but with the environment:

    - ``ENOSYS``: the kernel is older than 5.1, was built without
      ``CONFIG_IO_URING``, or a seccomp filter (containers, sandboxes) blocks
      the system call;
    - ``EPERM``: the ``kernel.io_uring_disabled`` sysctl is 2, or is 1 and
      this process is neither privileged nor in ``kernel.io_uring_group``;
    - ``ENOMEM``: before Linux 5.12 ring memory counted against
      ``RLIMIT_MEMLOCK`` (``ulimit -l``), which is often 64 KiB.
    """


def unavailable(err: int, detail: str = "") -> UringUnavailableError:
    """The ``UringUnavailableError`` for a refused ``io_uring_setup``."""
    causes = {
        _errno.ENOSYS: (
            "the io_uring_setup system call does not exist here: the kernel is "
            "older than 5.1 or built without CONFIG_IO_URING, or a seccomp "
            "filter blocks it (containers: allow io_uring_setup/enter/register "
            "in the seccomp profile)"
        ),
        _errno.EPERM: (
            "io_uring is disabled by the kernel.io_uring_disabled sysctl "
            "(set it to 0, or to 1 and add this user to kernel.io_uring_group, "
            "or run privileged)"
        ),
        _errno.EACCES: (
            "io_uring is denied by a security module (SELinux/AppArmor policy "
            "for io_uring); allow it in the policy"
        ),
        _errno.ENOMEM: (
            "the ring's memory could not be locked: before Linux 5.12 rings "
            "count against RLIMIT_MEMLOCK; raise it (ulimit -l) or use fewer entries"
        ),
    }
    cause = causes.get(err, os.strerror(err))
    message = f"io_uring unavailable: {cause}"
    if detail:
        message += f" ({detail})"
    return UringUnavailableError(err, message)


class RingClosedError(ValueError):
    """An operation on a ring that was closed (like I/O on a closed file)."""


class RingThreadError(RuntimeError):
    """A ring made without ``threadsafe=True`` was used by a second thread.

    Such a ring belongs to the first thread that uses it: its SQ tail, CQ
    head and request table are updated without locks, so two threads at
    once could hand one completion out twice or lose one.  Make the ring
    with ``threadsafe=True`` to share it, or call ``release_thread()`` in
    the owning thread to hand it over.
    """


class RingForkedError(RuntimeError):
    """A ring was used in a child process created by ``fork()``.

    The child inherits the ring's file descriptor and the shared mappings: it
    would be submitting into, and reaping from, the *parent's* queues.  The
    child must create its own ring.
    """


class SubmissionQueueFull(BufferError):
    """No free SQE: every slot of the submission queue holds an unsubmitted
    or not yet consumed entry.  Call ``submit()`` (or, under SQPOLL, wait for
    the kernel thread with ``sq_wait()``), or open the ring with
    ``sq_full="submit"`` to have that done for you."""


class UnsupportedOperation(OSError):
    """The running kernel lacks an opcode or feature (found through the probe)."""

    def __init__(self, what: str, detail: str = "") -> None:
        message = f"{what} is not supported by this kernel ({os.uname().release})"
        if detail:
            message += f": {detail}"
        super().__init__(_errno.EOPNOTSUPP, message)
