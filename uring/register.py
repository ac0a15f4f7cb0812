"""Registration: tables the kernel keeps per ring, set up once, used by index.

Registered files (``IORING_REGISTER_FILES``): the kernel takes its own
reference to each file once, so a request that names a slot with
``IOSQE_FIXED_FILE`` skips the ``fget``/``fput`` pair (an atomic
increment/decrement on a shared counter) it would do per request.

Registered buffers (``IORING_REGISTER_BUFFERS``): the kernel pins the pages
once (``pin_user_pages``) and keeps the page list, so ``READ_FIXED`` /
``WRITE_FIXED`` skip mapping and pinning the user memory on every request.
The Python objects stay pinned here for as long as they are registered, and
every in-flight fixed request holds the buffer it uses, so replacing a slot
or unregistering while requests run is safe on both sides: the kernel keeps
its own reference to the old buffer's pages until they complete.

Registered ring fd (``IORING_REGISTER_RING_FDS``): ``io_uring_enter`` with
``IORING_ENTER_REGISTERED_RING`` skips the ``fdget`` of the ring itself.

Tables are kept here slot by slot, as the kernel has them: a sparse table
(``register_*_sparse``) starts empty and ``update_*`` fills or replaces
slots.  A *tag* given with a slot (the ``*2``/``*_UPDATE2`` forms) comes
back as a CQE (``user_data`` = the tag, ``res`` = 0, no request behind it)
once the kernel has let go of what the slot held: after the slot was
replaced or the table unregistered *and* every request that used it
completed.  Tags share the ``user_data`` space of the ring's completions:
pick values no request uses (e.g. with bit 63 set; ``prep_*`` numbers
requests from 1 upwards), and 0 means "no tag".

Other registrations: credentials (``register_personality``), restrictions
on a ring started with ``IORING_SETUP_R_DISABLED``, io-wq worker affinity
and limits, synchronous cancellation, the clock of wait timeouts, NAPI busy
polling, and two ring-less calls (``fd = -1``): ``send_msg_ring`` (a
``MSG_RING`` without a source ring) and ``query_opcodes``
(``IORING_REGISTER_QUERY``, 6.18).
"""

from __future__ import annotations

import ctypes
import datetime
import errno as _errno
import mmap
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import abi
from .buffers import PinnedBuffer, pin
from .bufring import BufferRing
from .errors import check_int, kernel_error, memlock_error
from .probe import Probe
from .ring import RingCore, Timeout
from .syscalls import Kernel, default_kernel

__all__ = ["BufferTable", "NapiSettings", "QueryOpcodes", "RegisterMixin", "query_opcodes",
           "send_msg_ring"]

_U64 = (1 << 64) - 1


def _fileno(f: Any) -> int:
    """An fd from an int or an object with ``fileno()`` (file, socket)."""
    fileno = getattr(f, "fileno", None)
    fd = f if isinstance(f, int) else fileno() if fileno is not None else None
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"not a file descriptor: {f!r}")
    return fd


class BufferTable:
    """The registered buffers slot by slot, as the kernel holds them: the
    ``PinnedBuffer`` registered in each slot, or None for an empty slot.

    The table pins each buffer while it is registered.  A fixed-buffer
    request holds the ``PinnedBuffer`` of the slot it uses (not this
    table), so replacing the slot or unregistering the table while the
    request runs leaves that buffer alive until the request's CQE: the
    kernel, too, keeps the old pages pinned until then."""

    __slots__ = ("buffers",)

    def __init__(self, buffers: List[Optional[PinnedBuffer]]) -> None:
        # Never changed in place: an update makes a new table, so code that
        # holds a table for a request keeps the buffers that request used.
        # (Typed Any: a slot is a PinnedBuffer or None.)
        self.buffers: List[Any] = buffers

    @property
    def count(self) -> int:
        return len(self.buffers)

    def __repr__(self) -> str:
        used = sum(b is not None for b in self.buffers)
        return f"<BufferTable {used} of {len(self.buffers)} slots in use>"


class NapiSettings(NamedTuple):
    """NAPI busy-poll settings of a ring (``struct io_uring_napi``)."""

    busy_poll_us: int  # busy-poll time per wait, microseconds (0: off)
    prefer_busy_poll: bool  # SO_PREFER_BUSY_POLL for the polled queues
    tracking: int  # IO_URING_NAPI_TRACKING_* (INACTIVE when unregistered)


class QueryOpcodes(NamedTuple):
    """``struct io_uring_query_opcode``: what the running kernel knows."""

    request_opcodes: int  # IORING_OP_* values below this exist (IORING_OP_LAST)
    register_opcodes: int  # IORING_REGISTER_LAST
    features: int  # every IORING_FEAT_* flag the kernel has
    setup_flags: int  # every IORING_SETUP_* flag it accepts
    enter_flags: int  # every IORING_ENTER_* flag
    sqe_flags: int  # every IOSQE_* flag
    query_opcodes: int  # IO_URING_QUERY_* values it answers


# include/uapi/linux/io_uring/query.h (6.18): a chain of headers, each
# pointing at one query's data; the kernel fills both in.
class _query_hdr(ctypes.Structure):
    _fields_ = [
        ("next_entry", ctypes.c_uint64),
        ("query_data", ctypes.c_uint64),
        ("query_op", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("result", ctypes.c_int32),
        ("__resv", ctypes.c_uint32 * 3),
    ]


class _query_opcode(ctypes.Structure):
    _fields_ = [
        ("nr_request_opcodes", ctypes.c_uint32),
        ("nr_register_opcodes", ctypes.c_uint32),
        ("feature_flags", ctypes.c_uint64),
        ("ring_setup_flags", ctypes.c_uint64),
        ("enter_flags", ctypes.c_uint64),
        ("sqe_flags", ctypes.c_uint64),
        ("nr_query_opcodes", ctypes.c_uint32),
        ("__pad", ctypes.c_uint32),
    ]


_IO_URING_QUERY_OPCODES = 0


def _register_blind(kernel: Optional[Kernel], opcode: int, arg: int, nr_args: int) -> int:
    """``io_uring_register(-1, opcode, ...)``: the opcodes that need no ring."""
    k = kernel if kernel is not None else default_kernel()
    while True:
        try:
            return k.register(-1, opcode, arg, nr_args)
        except InterruptedError:
            continue
        except OSError as exc:
            raise kernel_error(exc.errno or 0,
                               f"io_uring_register({abi.IoringRegisterOp(opcode).name})") from None


def query_opcodes(kernel: Optional[Kernel] = None) -> QueryOpcodes:
    """``IORING_REGISTER_QUERY`` with ``IO_URING_QUERY_OPCODES`` (6.18+),
    asked without a ring: how many opcodes and which flags this kernel
    knows.  Raises ``OSError`` (``EINVAL``) on kernels without the query."""
    data = _query_opcode()
    hdr = _query_hdr()
    hdr.query_op = _IO_URING_QUERY_OPCODES
    hdr.query_data = ctypes.addressof(data)
    hdr.size = ctypes.sizeof(data)
    _register_blind(kernel, abi.IORING_REGISTER_QUERY, ctypes.addressof(hdr), 0)
    if hdr.result < 0:
        raise kernel_error(-hdr.result, "IORING_REGISTER_QUERY(IO_URING_QUERY_OPCODES)")
    return QueryOpcodes(int(data.nr_request_opcodes), int(data.nr_register_opcodes),
                        int(data.feature_flags), int(data.ring_setup_flags),
                        int(data.enter_flags), int(data.sqe_flags), int(data.nr_query_opcodes))


def send_msg_ring(target: Any, res: int, user_data: int, *, cqe_flags: Optional[int] = None,
                  kernel: Optional[Kernel] = None) -> None:
    """Post a CQE (*user_data*, *res*) into the ring *target* (a ``Ring`` or
    a ring fd) without a ring of our own: ``IORING_REGISTER_SEND_MSG_RING``
    with ``fd = -1`` and an ``IORING_OP_MSG_RING`` SQE (``IORING_MSG_DATA``)
    that the kernel carries out at once.  *cqe_flags* become the posted
    CQE's flags (``IORING_MSG_RING_FLAGS_PASS``)."""
    fd = getattr(target, "fd", target)
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise ValueError(f"send_msg_ring: not a ring fd: {target!r}")
    sqe = abi.io_uring_sqe()
    sqe.opcode = abi.IORING_OP_MSG_RING
    sqe.fd = fd
    sqe.addr = abi.IORING_MSG_DATA
    sqe.len = res & 0xFFFFFFFF  # the target CQE's res (an s32 in the CQE)
    sqe.off = user_data & _U64
    if cqe_flags is not None:
        sqe.msg_ring_flags = abi.IORING_MSG_RING_FLAGS_PASS
        sqe.file_index = cqe_flags
    _register_blind(kernel, abi.IORING_REGISTER_SEND_MSG_RING, ctypes.addressof(sqe), 1)


def _timespec(value: Union[int, float, datetime.timedelta]) -> abi.kernel_timespec:
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    if not seconds >= 0:
        raise ValueError(f"a timeout must be >= 0 seconds, got {value!r}")
    ns = int(round(seconds * 1e9))
    ts = abi.kernel_timespec()
    ts.tv_sec, ts.tv_nsec = divmod(ns, 10**9)
    return ts


def _memlock_error(exc: OSError, what: str,
                   pins: Sequence[Optional[PinnedBuffer]]) -> OSError:
    """*exc* (``ENOMEM`` from registering *pins*) with ``RLIMIT_MEMLOCK``,
    its current values and what was asked named; any other error as is."""
    if exc.errno != _errno.ENOMEM:
        return exc
    page = mmap.PAGESIZE
    bufs = [b for b in pins if b is not None]
    nbytes = sum(b.nbytes for b in bufs)
    pages = sum((b.address + b.nbytes - 1) // page - b.address // page + 1
                for b in bufs if b.nbytes)
    return memlock_error(exc.errno, what, nbytes, len(bufs), pages)


def _iovecs(pins: Sequence[Optional[PinnedBuffer]]) -> Any:
    """An ``iovec[]`` for *pins*; an empty slot is ``{NULL, 0}``."""
    array = (abi.iovec * max(len(pins), 1))()
    for i, b in enumerate(pins):
        if b is not None:
            array[i].iov_base = b.address
            array[i].iov_len = b.nbytes
    return array


class RegisterMixin(RingCore):
    """Registration conveniences on top of ``RingCore.register``."""

    _files: int = 0
    _buffers: Optional[BufferTable] = None
    _buf_rings: Optional[Dict[int, BufferRing]] = None

    def _tags(self, tags: Optional[Sequence[int]], n: int, empty: Sequence[bool], what: str) -> Any:
        """A ``__u64[]`` of *tags* for *n* slots, checked: one per slot,
        none on an empty slot, none equal to an in-flight request's
        ``user_data`` (its tag CQE would be taken for the request's)."""
        if tags is None:
            return None
        tags = list(tags)
        if len(tags) != n:
            raise ValueError(f"{what}: {len(tags)} tags for {n} slots")
        for tag, is_empty in zip(tags, empty):
            if not isinstance(tag, int) or not 0 <= tag <= _U64:
                raise ValueError(f"{what}: a tag is a u64, got {tag!r}")
            if tag and is_empty:
                raise ValueError(f"{what}: an empty slot cannot carry a tag ({tag})")
            if tag and self.in_flight_user_data(tag):
                raise ValueError(f"{what}: tag {tag} is the user_data of a request in flight")
        return (ctypes.c_uint64 * max(n, 1))(*tags)

    def close(self, *, cancel: bool = True, timeout: Timeout = 5.0) -> None:
        """``RingCore.close``, then let go of the registered buffers: the
        ring's tables are gone with it (a request that outlived the close
        holds its own buffer)."""
        super().close(cancel=cancel, timeout=timeout)
        if self.closed:
            self._buffers = None
            self._files = 0

    # -- files -----------------------------------------------------------

    def register_files(self, files: Iterable[Any], tags: Optional[Sequence[int]] = None) -> int:
        """Register a file table; ``-1`` (or None) leaves a slot empty.
        Requests then pass the slot index as fd with ``fixed=True``.

        With *tags* (one per slot, 0 for none) the table goes in with
        ``IORING_REGISTER_FILES2``, and each tag comes back as a CQE once
        the kernel has dropped that slot's file (see the module doc)."""
        fds = [-1 if f is None else _fileno(f) for f in files]
        if not fds:
            raise ValueError("register_files needs at least one slot")
        array = (ctypes.c_int32 * len(fds))(*fds)
        tag_array = self._tags(tags, len(fds), [fd < 0 for fd in fds], "register_files")
        self._register_table(abi.IORING_REGISTER_FILES, abi.IORING_REGISTER_FILES2,
                             array, len(fds), tag_array)
        self._files = len(fds)
        return len(fds)

    def _register_table(self, plain: int, tagged: int, array: Any, count: int,
                        tag_array: Any) -> None:
        """A file or buffer table: the plain opcode, or with tags the ``*2``
        one, whose ``io_uring_rsrc_register`` carries the tag array too."""
        if tag_array is None:
            self.register(plain, ctypes.addressof(array), count)
            return
        rr = abi.io_uring_rsrc_register()
        rr.nr = count
        rr.data = ctypes.addressof(array)
        rr.tags = ctypes.addressof(tag_array)
        self.register(tagged, ctypes.addressof(rr), ctypes.sizeof(rr))

    def register_files_sparse(self, count: int) -> int:
        """Register *count* empty slots (``IORING_RSRC_REGISTER_SPARSE``)."""
        rr = abi.io_uring_rsrc_register()
        rr.nr = count
        rr.flags = abi.IORING_RSRC_REGISTER_SPARSE
        self.register(abi.IORING_REGISTER_FILES2, ctypes.addressof(rr), ctypes.sizeof(rr))
        self._files = count
        return count

    def update_files(self, offset: int, files: Sequence[Any],
                     tags: Optional[Sequence[int]] = None) -> int:
        """Replace slots from *offset* (``IORING_REGISTER_FILES_UPDATE``, or
        ``IORING_REGISTER_FILES_UPDATE2`` with *tags*); ``-1`` empties a
        slot, ``abi.IORING_REGISTER_FILES_SKIP`` (-2) leaves it as it is.
        Returns how many were updated.  A request still using a replaced
        file keeps its own reference to it until it completes."""
        fds = [-1 if f is None else _fileno(f) for f in files]
        array = (ctypes.c_int32 * max(len(fds), 1))(*fds)
        tag_array = self._tags(tags, len(fds), [fd < 0 for fd in fds], "update_files")
        if tag_array is None:
            upd = abi.io_uring_files_update()
            upd.offset = offset
            upd.fds = ctypes.addressof(array)
            return self.register(abi.IORING_REGISTER_FILES_UPDATE, ctypes.addressof(upd), len(fds))
        up2 = abi.io_uring_rsrc_update2()
        up2.offset = offset
        up2.data = ctypes.addressof(array)
        up2.tags = ctypes.addressof(tag_array)
        up2.nr = len(fds)
        return self.register(abi.IORING_REGISTER_FILES_UPDATE2, ctypes.addressof(up2),
                             ctypes.sizeof(up2))

    def unregister_files(self) -> None:
        """``IORING_UNREGISTER_FILES``.  Requests in flight on a slot keep
        their own reference to its file and complete normally."""
        self.register(abi.IORING_UNREGISTER_FILES, 0, 0)
        self._files = 0

    def register_file_alloc_range(self, offset: int, length: int) -> None:
        """Where the kernel picks slots for ``IORING_FILE_INDEX_ALLOC``
        (direct opens/accepts/sockets, ``FILES_UPDATE``): only
        ``[offset, offset + length)`` (``IORING_REGISTER_FILE_ALLOC_RANGE``)."""
        if offset < 0 or length < 0:
            raise ValueError(f"register_file_alloc_range: negative offset/length {offset}/{length}")
        rng = abi.io_uring_file_index_range()
        rng.off = offset
        rng.len = length
        self.register(abi.IORING_REGISTER_FILE_ALLOC_RANGE, ctypes.addressof(rng), 0)

    # -- buffers ---------------------------------------------------------

    def register_buffers(self, buffers: Sequence[Any],
                         tags: Optional[Sequence[int]] = None) -> List[int]:
        """Register writable buffers for ``READ_FIXED``/``WRITE_FIXED``
        (None: an empty slot, for ``update_buffers`` to fill).

        Returns each buffer's address (0 for an empty slot).  They stay
        pinned (cannot be resized or collected) until ``unregister_buffers``
        (or an update replaces them) and the last request that uses them
        completes.  With *tags* (one per slot, 0 for none) the table goes
        in with ``IORING_REGISTER_BUFFERS2``, and each tag comes back as a
        CQE once the kernel lets go of that slot's buffer.
        """
        pins = [None if b is None else pin(b, True) for b in buffers]
        if not pins:
            raise ValueError("register_buffers needs at least one buffer")
        array = _iovecs(pins)
        tag_array = self._tags(tags, len(pins), [p is None for p in pins], "register_buffers")
        try:
            self._register_table(abi.IORING_REGISTER_BUFFERS, abi.IORING_REGISTER_BUFFERS2,
                                 array, len(pins), tag_array)
        except OSError as exc:
            op = "IORING_REGISTER_BUFFERS" if tag_array is None else "IORING_REGISTER_BUFFERS2"
            raise _memlock_error(exc, f"io_uring_register({op})", pins) from None
        self._buffers = BufferTable(pins)
        return [0 if p is None else p.address for p in pins]

    def register_buffers_sparse(self, count: int) -> int:
        """Register a table of *count* empty buffer slots
        (``IORING_REGISTER_BUFFERS2`` with ``IORING_RSRC_REGISTER_SPARSE``),
        filled later with ``update_buffers``."""
        if count < 1:
            raise ValueError(f"register_buffers_sparse: count must be >= 1, got {count}")
        rr = abi.io_uring_rsrc_register()
        rr.nr = count
        rr.flags = abi.IORING_RSRC_REGISTER_SPARSE
        self.register(abi.IORING_REGISTER_BUFFERS2, ctypes.addressof(rr), ctypes.sizeof(rr))
        self._buffers = BufferTable([None] * count)
        return count

    def update_buffers(self, offset: int, buffers: Sequence[Any],
                       tags: Optional[Sequence[int]] = None) -> int:
        """Put *buffers* in the slots from *offset* on (None empties a slot)
        with ``IORING_REGISTER_BUFFERS_UPDATE``; returns how many slots
        were updated.  A request in flight on a replaced slot keeps the old
        buffer (the kernel its pages, the request the Python object) until
        it completes; the old slot's tag, if any, then posts its CQE."""
        table = self._buffers
        pins = [None if b is None else pin(b, True) for b in buffers]
        if table is None:
            raise ValueError("update_buffers: no buffer table is registered")
        if offset < 0 or offset + len(pins) > table.count:
            raise ValueError(f"update_buffers: slots [{offset}, {offset + len(pins)}) are outside "
                             f"the {table.count}-slot table")
        if not pins:
            return 0
        array = _iovecs(pins)
        tag_array = self._tags(tags, len(pins), [p is None for p in pins], "update_buffers")
        up2 = abi.io_uring_rsrc_update2()
        up2.offset = offset
        up2.data = ctypes.addressof(array)
        up2.tags = 0 if tag_array is None else ctypes.addressof(tag_array)
        up2.nr = len(pins)
        try:
            done = self.register(abi.IORING_REGISTER_BUFFERS_UPDATE, ctypes.addressof(up2),
                                 ctypes.sizeof(up2))
        except OSError as exc:
            raise _memlock_error(exc, "io_uring_register(IORING_REGISTER_BUFFERS_UPDATE)",
                                 pins) from None
        slots = list(table.buffers)
        slots[offset: offset + done] = pins[:done]
        self._buffers = BufferTable(slots)
        return done

    def unregister_buffers(self) -> None:
        """``IORING_UNREGISTER_BUFFERS``.  In-flight fixed-buffer requests
        hold their own buffer until they complete."""
        self.register(abi.IORING_UNREGISTER_BUFFERS, 0, 0)
        self._buffers = None

    def clone_buffers(self, src: "RegisterMixin", *, src_offset: int = 0, dst_offset: int = 0,
                      count: int = 0, replace: bool = False) -> int:
        """Share *src*'s registered buffers with this ring
        (``IORING_REGISTER_CLONE_BUFFERS``): *count* slots (0: all) from
        *src_offset* land at *dst_offset* here; no pages are pinned again.
        This ring must have no buffer table unless *replace*.  Returns the
        size of this ring's table afterwards."""
        if not isinstance(src, RegisterMixin):
            raise TypeError(f"clone_buffers: the source is a Ring, not {type(src).__name__}")
        src_table = src.buffer_table
        if src_table is None:
            raise ValueError("clone_buffers: the source ring has no registered buffers")
        if min(src_offset, dst_offset, count) < 0:
            raise ValueError("clone_buffers: offsets and count must be >= 0")
        arg = abi.io_uring_clone_buffers()
        arg.src_fd = src.fd
        arg.flags = abi.IORING_REGISTER_DST_REPLACE if replace else 0
        arg.src_off = src_offset
        arg.dst_off = dst_offset
        arg.nr = count
        self.register(abi.IORING_REGISTER_CLONE_BUFFERS, ctypes.addressof(arg), 1)
        nr = count or src_table.count
        old = self._buffers.buffers if self._buffers is not None else []
        slots: List[Optional[PinnedBuffer]] = list(old)
        slots += [None] * (max(dst_offset + nr, len(old)) - len(old))
        slots[dst_offset: dst_offset + nr] = src_table.buffers[src_offset: src_offset + nr]
        self._buffers = BufferTable(slots)
        return len(slots)

    def _registered_buffer(self, what: str, buf_index: int) -> PinnedBuffer:
        """The buffer registered in slot *buf_index*, for a request to hold
        until its CQE; ``ValueError`` when the slot is outside the table or
        empty."""
        table = self._buffers
        if table is None or not 0 <= buf_index < table.count:
            raise ValueError(
                f"{what}: buffer index {buf_index} is not registered "
                f"({0 if table is None else table.count} registered buffers)"
            )
        buf = table.buffers[buf_index]
        if buf is None:
            raise ValueError(f"{what}: registered buffer slot {buf_index} is empty")
        return buf  # type: ignore[no-any-return]

    @property
    def registered_buffers(self) -> int:
        return self._buffers.count if self._buffers is not None else 0

    @property
    def buffer_table(self) -> Optional["BufferTable"]:
        """The registered buffer table (what the kernel's slots point at), or None."""
        return self._buffers

    @property
    def registered_files(self) -> int:
        return self._files

    # -- provided-buffer rings ---------------------------------------------

    def register_buf_ring(self, group: int, entries: int, size: int) -> BufferRing:
        """A provided-buffer ring of *entries* buffers of *size* bytes as
        buffer group *group* (``IORING_REGISTER_PBUF_RING``), every buffer
        already handed to the kernel.  Receives and reads name the group
        (``buf_group=``) and the kernel picks a buffer when data arrives;
        ``BufferRing.take(completion)`` copies the data out and recycles it."""
        group = check_int("register_buf_ring: group (a u16)", group, 0, 0xFFFF)
        rings = self._buf_rings
        if rings is None:
            rings = self._buf_rings = {}
        if group in rings:
            raise ValueError(f"buffer group {group} already has a registered ring")
        br = BufferRing(self.register, group, entries, size)
        rings[group] = br
        return br

    def unregister_buf_ring(self, group: int) -> None:
        """``IORING_UNREGISTER_PBUF_RING``.  Requests that may still select
        from the group hold its memory until their final CQE."""
        rings = self._buf_rings or {}
        br = rings.get(group)
        if br is None:
            raise ValueError(f"buffer group {group} has no registered ring")
        reg = abi.io_uring_buf_reg()
        reg.bgid = group
        self.register(abi.IORING_UNREGISTER_PBUF_RING, ctypes.addressof(reg), 1)
        br.unregistered()
        del rings[group]

    def _buffer_group(self, group: int) -> Any:
        """What a buffer-selecting request must hold: the memory of group
        *group* (a registered ring, or pools given with PROVIDE_BUFFERS)."""
        found = (self._buf_rings or {}).get(group)
        if found is None:
            found = (getattr(self, "_provided", None) or {}).get(group)
        if found is None:
            raise ValueError(
                f"no buffers are provided for group {group}: register_buf_ring() "
                "or prep_provide_buffers() first"
            )
        return found

    # -- eventfd -----------------------------------------------------------

    def register_eventfd(self, efd: int, *, async_only: bool = False) -> None:
        """Signal *efd* on each posted CQE (``IORING_REGISTER_EVENTFD``, or
        ``_ASYNC`` for completions that did not finish inline)."""
        value = ctypes.c_int32(efd)
        op = abi.IORING_REGISTER_EVENTFD_ASYNC if async_only else abi.IORING_REGISTER_EVENTFD
        self.register(op, ctypes.addressof(value), 1)

    def unregister_eventfd(self) -> None:
        self.register(abi.IORING_UNREGISTER_EVENTFD, 0, 0)

    # -- credentials ---------------------------------------------------------

    def register_personality(self) -> int:
        """Register the calling thread's current credentials
        (``IORING_REGISTER_PERSONALITY``); returns the id.  A request whose
        SQE carries the id in ``personality`` runs with these credentials,
        whatever the submitter's are by then."""
        return self.register(abi.IORING_REGISTER_PERSONALITY, 0, 0)

    def unregister_personality(self, personality: int) -> None:
        """``IORING_UNREGISTER_PERSONALITY`` (the id goes in ``nr_args``)."""
        self.register(abi.IORING_UNREGISTER_PERSONALITY, 0, personality)

    # -- restrictions --------------------------------------------------------

    def register_restrictions(self, *, sqe_ops: Iterable[int] = (),
                              register_ops: Iterable[int] = (),
                              sqe_flags_allowed: Optional[int] = None,
                              sqe_flags_required: Optional[int] = None) -> None:
        """Limit what this ring will do once ``enable()``d
        (``IORING_REGISTER_RESTRICTIONS``; the ring must have been created
        with ``IORING_SETUP_R_DISABLED``, and this works once).

        Only *sqe_ops* may be submitted (any other completes with
        ``-EACCES``), only *register_ops* registered (others raise
        ``PermissionError``); an SQE may carry only the IOSQE flags in
        *sqe_flags_allowed* plus *sqe_flags_required*, and must carry all
        of the latter.  (The probe of a restricted ring is refused unless
        allowed; ``prep_*`` then asks a scratch ring.)"""
        rules: List[Tuple[int, int]] = []
        rules += [(abi.IORING_RESTRICTION_SQE_OP, int(op)) for op in sqe_ops]
        rules += [(abi.IORING_RESTRICTION_REGISTER_OP, int(op)) for op in register_ops]
        if sqe_flags_allowed is not None:
            rules.append((abi.IORING_RESTRICTION_SQE_FLAGS_ALLOWED, int(sqe_flags_allowed)))
        if sqe_flags_required is not None:
            rules.append((abi.IORING_RESTRICTION_SQE_FLAGS_REQUIRED, int(sqe_flags_required)))
        if not rules:
            raise ValueError("register_restrictions: no rule given (nothing would be allowed)")
        array = (abi.io_uring_restriction * len(rules))()
        for entry, (kind, value) in zip(array, rules):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"register_restrictions: {value} does not fit the u8 of a rule")
            entry.opcode = kind
            entry.register_op = value  # one u8 union: register_op/sqe_op/sqe_flags
        self.register(abi.IORING_REGISTER_RESTRICTIONS, ctypes.addressof(array), len(rules))

    # -- io-wq -------------------------------------------------------------------

    def register_iowq_affinity(self, cpus: Iterable[int]) -> None:
        """Run this thread's io-wq workers (or the SQPOLL thread's) only on
        *cpus* (``IORING_REGISTER_IOWQ_AFF``, a ``cpu_set_t`` bitmap);
        workers started from now on get the mask."""
        cpu_list = sorted(set(check_int("register_iowq_affinity: a CPU number", c, 0, 1 << 20)
                              for c in cpus))
        if not cpu_list or cpu_list[0] < 0:
            raise ValueError(f"register_iowq_affinity: need CPU numbers >= 0, got {cpu_list}")
        size = (cpu_list[-1] // 64 + 1) * 8  # whole unsigned longs, as cpu_set_t
        mask = bytearray(size)
        for c in cpu_list:
            mask[c // 8] |= 1 << (c % 8)
        array = (ctypes.c_uint8 * size).from_buffer(mask)
        self.register(abi.IORING_REGISTER_IOWQ_AFF, ctypes.addressof(array), size)

    def unregister_iowq_affinity(self) -> None:
        """``IORING_UNREGISTER_IOWQ_AFF``: back to every CPU the cpuset allows."""
        self.register(abi.IORING_UNREGISTER_IOWQ_AFF, 0, 0)

    def set_iowq_max_workers(self, bounded: int = 0, unbounded: int = 0) -> Tuple[int, int]:
        """Cap io-wq's bounded (regular file/block I/O) and unbounded
        (sockets, pipes) worker counts (``IORING_REGISTER_IOWQ_MAX_WORKERS``);
        0 leaves a limit as it is.  Returns the limits before the call
        (so ``set_iowq_max_workers()`` only reads them)."""
        if not (0 <= bounded <= 0x7FFFFFFF and 0 <= unbounded <= 0x7FFFFFFF):
            raise ValueError(f"set_iowq_max_workers: limits must be 0..2**31-1, "
                             f"got {bounded}, {unbounded}")
        values = (ctypes.c_uint32 * 2)(bounded, unbounded)
        self.register(abi.IORING_REGISTER_IOWQ_MAX_WORKERS, ctypes.addressof(values), 2)
        return int(values[0]), int(values[1])

    # -- synchronous cancellation ---------------------------------------------

    def cancel_sync(self, user_data: Optional[int] = None, *, fd: Any = None,
                    opcode: Optional[int] = None, any: bool = False, all: bool = False,
                    fixed: bool = False,
                    timeout: Union[None, int, float, datetime.timedelta] = None) -> int:
        """Cancel requests and wait until they are gone
        (``IORING_REGISTER_SYNC_CANCEL``), matching on *user_data*, *fd*
        (a registered slot with *fixed*), *opcode*, or *any* request; *all*
        cancels every match instead of the first.  Returns once the
        matches have completed (their CQEs, ``-ECANCELED`` or the result
        they reached first, are then in the CQ to be reaped); returns 0, or
        the number cancelled with *all*.  ``FileNotFoundError`` (``ENOENT``):
        nothing matched; ``TimeoutError`` (``ETIME``): *timeout* seconds
        passed first (default: wait as long as it takes)."""
        flags = 0
        reg = abi.io_uring_sync_cancel_reg()
        if user_data is not None:
            flags |= abi.IORING_ASYNC_CANCEL_USERDATA
            reg.addr = user_data & _U64
        if fd is not None:
            flags |= abi.IORING_ASYNC_CANCEL_FD
            if fixed:
                flags |= abi.IORING_ASYNC_CANCEL_FD_FIXED
            reg.fd = _fileno(fd)
        else:
            reg.fd = -1
        if opcode is not None:
            flags |= abi.IORING_ASYNC_CANCEL_OP
            reg.opcode = int(opcode)
        if any:
            flags |= abi.IORING_ASYNC_CANCEL_ANY
        if all:
            flags |= abi.IORING_ASYNC_CANCEL_ALL
        if not flags & ~abi.IORING_ASYNC_CANCEL_ALL:
            raise ValueError("cancel_sync: say what to cancel (user_data, fd, opcode or any=True)")
        reg.flags = flags
        if timeout is None:
            reg.timeout.tv_sec = reg.timeout.tv_nsec = -1  # {-1, -1}: no timeout
        else:
            ts = _timespec(timeout)
            reg.timeout.tv_sec, reg.timeout.tv_nsec = ts.tv_sec, ts.tv_nsec
        return self.register(abi.IORING_REGISTER_SYNC_CANCEL, ctypes.addressof(reg), 1)

    # -- waiting -------------------------------------------------------------------

    def register_clock(self, clockid: int) -> None:
        """The clock the ring's wait timeouts are measured on
        (``IORING_REGISTER_CLOCK``): ``time.CLOCK_MONOTONIC`` (the default)
        or ``time.CLOCK_BOOTTIME`` (counts suspended time); anything else
        is refused with ``EINVAL``."""
        reg = abi.io_uring_clock_register()
        reg.clockid = clockid
        self.register(abi.IORING_REGISTER_CLOCK, ctypes.addressof(reg), 0)

    def register_napi(self, busy_poll_us: int, prefer_busy_poll: bool = False, *,
                      tracking: int = abi.IO_URING_NAPI_TRACKING_DYNAMIC) -> NapiSettings:
        """Busy-poll the NAPI queues of the ring's sockets for up to
        *busy_poll_us* microseconds when waiting (``IORING_REGISTER_NAPI``);
        *tracking* is ``IO_URING_NAPI_TRACKING_DYNAMIC`` (queues found from
        the sockets used) or ``_STATIC``.  Returns the settings before."""
        napi = abi.io_uring_napi()
        napi.busy_poll_to = check_int("register_napi: busy_poll_us", busy_poll_us, 0, 0xFFFFFFFF)
        tracking = check_int("register_napi: tracking", tracking, 0, 0xFF)
        napi.prefer_busy_poll = bool(prefer_busy_poll)
        napi.opcode = abi.IO_URING_NAPI_REGISTER_OP
        napi.op_param = tracking
        self.register(abi.IORING_REGISTER_NAPI, ctypes.addressof(napi), 1)
        return NapiSettings(int(napi.busy_poll_to), bool(napi.prefer_busy_poll), int(napi.op_param))

    def unregister_napi(self) -> NapiSettings:
        """``IORING_UNREGISTER_NAPI``: stop busy polling; returns the
        settings it had."""
        napi = abi.io_uring_napi()
        self.register(abi.IORING_UNREGISTER_NAPI, ctypes.addressof(napi), 1)
        return NapiSettings(int(napi.busy_poll_to), bool(napi.prefer_busy_poll), int(napi.op_param))

    # -- ring-less calls ---------------------------------------------------------

    send_msg_ring = staticmethod(send_msg_ring)
    query_opcodes = staticmethod(query_opcodes)

    # -- probe -------------------------------------------------------------

    def probe(self) -> Probe:
        """Which opcodes this kernel supports (``IORING_REGISTER_PROBE``)."""
        nr = 256
        p = abi.probe_struct(nr)
        self.register(abi.IORING_REGISTER_PROBE, ctypes.addressof(p), nr)
        return Probe.from_struct(p, self.params.features)
