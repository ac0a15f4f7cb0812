"""asyncio on io_uring.

Two ways in, and the same ops on both:

* **A ring attached to any loop.**  ``await uring.asyncio.sock_recv(sock, n)``
  or ``async with uring.asyncio.open(path, "rb") as f`` on the running loop
  (the stock one included) makes that loop's ``LoopRing`` on first use:
  SQEs batched per loop iteration, completions noticed through the ring fd
  with ``loop.add_reader`` (``driver``).
* **A loop on io_uring.**  ``uring.asyncio.run(main())``, or
  ``asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())``: asyncio's
  own Unix loop, its readiness polling done with ``IORING_OP_POLL_ADD`` and one
  ``io_uring_enter`` per iteration for polls and requests alike (``loop``).

Files (``open``, ``AsyncBinaryFile``, ``AsyncBinaryStream``, ``AsyncTextFile``:
aiofiles' API, with the builtin file's results and errors),
sockets (``sock_*``, with the semantics of the loop methods of the same names), transports and streams
(``open_connection``, ``start_server``, ``create_connection``,
``create_server``); ``uring.asyncio.os`` (``os.path``) and
``uring.asyncio.tempfile``, as ``aiofiles.os`` and ``aiofiles.tempfile``.
Where io_uring is blocked (a seccomp filter, ``kernel.io_uring_disabled``),
all of these run on a thread pool and asyncio's own loop and transports
instead, with one ``RuntimeWarning`` naming the cause; ``backend()`` says
which is in use, and ``URING_ASYNCIO_BACKEND=io_uring`` (or
``set_backend("io_uring")``) asks for io_uring or the error (``fallback``).
Cancelling a task cancels its request in the kernel and the task unwinds only after the kernel has let go of its buffer.
"""

from __future__ import annotations

from .driver import LoopRing, get_ring
from .fallback import backend, set_backend
from .files import AsyncBinaryFile, AsyncBinaryStream, AsyncFile, AsyncTextFile, open
from .loop import EventLoopPolicy, UringEventLoop, UringSelector, new_event_loop, run
from .sockets import (
    sock_accept,
    sock_connect,
    sock_recv,
    sock_recv_into,
    sock_recvfrom,
    sock_recvfrom_into,
    sock_sendall,
    sock_sendto,
)
from .streams import Server, create_connection, create_server, open_connection, start_server

# ``uring.asyncio.os`` (with ``os.path`` = ``ospath``) and ``uring.asyncio.tempfile``,
# as ``aiofiles.os``/``aiofiles.ospath``/``aiofiles.tempfile``.  Submodules, not
# in ``__all__``: a star import must not shadow the stdlib's ``os`` and ``tempfile``.
# (Inside this package ``import os`` is still the stdlib's: imports are absolute.)
from . import os, ospath, tempfile  # noqa: E402,F401  # isort: skip

__all__ = [
    "AsyncBinaryFile",
    "AsyncBinaryStream",
    "AsyncFile",
    "AsyncTextFile",
    "EventLoopPolicy",
    "LoopRing",
    "Server",
    "UringEventLoop",
    "backend",
    "UringSelector",
    "create_connection",
    "create_server",
    "get_ring",
    "new_event_loop",
    "open",
    "open_connection",
    "run",
    "set_backend",
    "sock_accept",
    "sock_connect",
    "sock_recv",
    "sock_recv_into",
    "sock_recvfrom",
    "sock_recvfrom_into",
    "sock_sendall",
    "sock_sendto",
    "start_server",
]
