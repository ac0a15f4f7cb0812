"""Registration: tables the kernel keeps per ring, set up once, used by index.

Registered files (``IORING_REGISTER_FILES``): the kernel takes its own
reference to each file once, so a request that names a slot with
``IOSQE_FIXED_FILE`` skips the ``fget``/``fput`` pair (an atomic
increment/decrement on a shared counter) it would do per request.

Registered buffers (``IORING_REGISTER_BUFFERS``): the kernel pins the pages
once (``pin_user_pages``) and keeps the page list, so ``READ_FIXED`` /
``WRITE_FIXED`` skip mapping and pinning the user memory on every request.
The Python objects stay pinned here for as long as they are registered, and
every in-flight fixed request holds the table it used, so unregistering
while requests run is safe on both sides: the kernel keeps its own
reference to the old table until they complete.

Registered ring fd (``IORING_REGISTER_RING_FDS``): ``io_uring_enter`` with
``IORING_ENTER_REGISTERED_RING`` skips the ``fdget`` of the ring itself.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Iterable, List, Optional, Sequence

from . import abi
from .buffers import IovecArray
from .probe import Probe
from .ring import RingCore

__all__ = ["RegisterMixin"]


def _fileno(f: Any) -> int:
    """An fd from an int or an object with ``fileno()`` (file, socket)."""
    fileno = getattr(f, "fileno", None)
    fd = f if isinstance(f, int) else fileno() if fileno is not None else None
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"not a file descriptor: {f!r}")
    return fd


class RegisterMixin(RingCore):
    """Registration conveniences on top of ``RingCore.register``."""

    _files: int = 0
    _buffers: Optional[IovecArray] = None

    # -- files -----------------------------------------------------------

    def register_files(self, files: Iterable[Any]) -> int:
        """Register a file table; ``-1`` (or None) leaves a slot empty.
        Requests then pass the slot index as fd with ``fixed=True``."""
        fds = [-1 if f is None else _fileno(f) for f in files]
        if not fds:
            raise ValueError("register_files needs at least one slot")
        array = (ctypes.c_int32 * len(fds))(*fds)
        self.register(abi.IORING_REGISTER_FILES, ctypes.addressof(array), len(fds))
        self._files = len(fds)
        return len(fds)

    def register_files_sparse(self, count: int) -> int:
        """Register *count* empty slots (``IORING_RSRC_REGISTER_SPARSE``)."""
        rr = abi.io_uring_rsrc_register()
        rr.nr = count
        rr.flags = abi.IORING_RSRC_REGISTER_SPARSE
        self.register(abi.IORING_REGISTER_FILES2, ctypes.addressof(rr), ctypes.sizeof(rr))
        self._files = count
        return count

    def update_files(self, offset: int, files: Sequence[Any]) -> int:
        """Replace slots from *offset* (``IORING_REGISTER_FILES_UPDATE``);
        ``-1`` empties a slot.  Returns how many were updated."""
        fds = [-1 if f is None else _fileno(f) for f in files]
        array = (ctypes.c_int32 * max(len(fds), 1))(*fds)
        upd = abi.io_uring_files_update()
        upd.offset = offset
        upd.fds = ctypes.addressof(array)
        return self.register(abi.IORING_REGISTER_FILES_UPDATE, ctypes.addressof(upd), len(fds))

    def unregister_files(self) -> None:
        self.register(abi.IORING_UNREGISTER_FILES, 0, 0)
        self._files = 0

    # -- buffers ---------------------------------------------------------

    def register_buffers(self, buffers: Sequence[Any]) -> List[int]:
        """Register writable buffers for ``READ_FIXED``/``WRITE_FIXED``.

        Returns each buffer's address.  They stay pinned (cannot be resized
        or collected) until ``unregister_buffers`` and the last request
        that uses them completes.
        """
        table = IovecArray(buffers, writable=True)
        if table.count == 0:
            raise ValueError("register_buffers needs at least one buffer")
        self.register(abi.IORING_REGISTER_BUFFERS, table.address, table.count)
        self._buffers = table
        return [b.address for b in table.buffers]

    def unregister_buffers(self) -> None:
        self.register(abi.IORING_UNREGISTER_BUFFERS, 0, 0)
        self._buffers = None  # in-flight requests still hold the table

    @property
    def registered_buffers(self) -> int:
        return self._buffers.count if self._buffers is not None else 0

    @property
    def registered_files(self) -> int:
        return self._files

    # -- the ring's own fd -------------------------------------------------

    def register_ring_fd(self) -> int:
        """Register the ring fd for the calling thread; enters made from
        this thread then pass the index with ``IORING_ENTER_REGISTERED_RING``
        (other threads keep using the real fd).  Returns the index."""
        upd = abi.io_uring_rsrc_update()
        upd.offset = 0xFFFFFFFF  # -1: let the kernel pick a free index
        upd.data = self._fd
        self.register(abi.IORING_REGISTER_RING_FDS, ctypes.addressof(upd), 1)
        self._enter_fd = int(upd.offset)
        self._registered_thread = threading.get_ident()
        return self._enter_fd

    def unregister_ring_fd(self) -> None:
        if self._enter_fd == self._fd:
            return
        upd = abi.io_uring_rsrc_update()
        upd.offset = self._enter_fd
        self.register(abi.IORING_UNREGISTER_RING_FDS, ctypes.addressof(upd), 1)
        self._enter_fd = self._fd

    # -- eventfd -----------------------------------------------------------

    def register_eventfd(self, efd: int, *, async_only: bool = False) -> None:
        """Signal *efd* on each posted CQE (``IORING_REGISTER_EVENTFD``, or
        ``_ASYNC`` for completions that did not finish inline)."""
        value = ctypes.c_int32(efd)
        op = abi.IORING_REGISTER_EVENTFD_ASYNC if async_only else abi.IORING_REGISTER_EVENTFD
        self.register(op, ctypes.addressof(value), 1)

    def unregister_eventfd(self) -> None:
        self.register(abi.IORING_UNREGISTER_EVENTFD, 0, 0)

    # -- probe -------------------------------------------------------------

    def probe(self) -> Probe:
        """Which opcodes this kernel supports (``IORING_REGISTER_PROBE``)."""
        nr = 256
        p = abi.probe_struct(nr)
        self.register(abi.IORING_REGISTER_PROBE, ctypes.addressof(p), nr)
        return Probe.from_struct(p, self.params.features)
