"""``Image``: a disk image (file or block device) opened the way QEMU's
``-drive file=...,aio=...,cache=...`` opens it.

The image is the front end: it checks and shapes requests (O_DIRECT
alignment, bounce buffers, read-modify-write) and hands the engine only
what the kernel will accept.  The engine (``aio``) moves bytes.

Cache modes, as QEMU defines them (``cache.direct``, ``cache.no-flush``,
writethrough):

============  ==========  ==========  ==============================
cache         O_DIRECT    flush       writes
============  ==========  ==========  ==============================
writeback     no          fdatasync   to the page cache
none          yes         fdatasync   to the device
writethrough  no          fdatasync   O_DSYNC: durable on completion
directsync    yes         fdatasync   O_DSYNC: durable on completion
unsafe        no          no-op       to the page cache
============  ==========  ==========  ==============================
"""

from __future__ import annotations

import errno
import operator
import os
import stat
import threading
from array import array
from collections import deque
from functools import partial
from itertools import repeat
from typing import Any, Callable, Deque, Iterable, List, Optional, Sequence, Tuple

from ..arena import offsets_within
from ..buffers import address_of
from ..errors import kernel_error
from ..ring import ThreadOwner
from .engine import ENGINE_TABLE, MAX_RETRIES, Capability, Engine, _check_max_batch, make_engine
from .faults import IoFaults
from .request import BlockRequest, Callback, Op, as_view, as_views, raise_deferred, total, view_and_address
from .sysops import aligned_buffer, logical_block_size, probe_alignment

__all__ = ["BlockArena", "CACHE_MODES", "DIRECT_SUBMIT_BATCH", "ENGINES", "Image", "open_image"]

_MAX_OFFSET = (1 << 63) - 1

#: requests per submit call under O_DIRECT (``submit_batch``'s default).
#: Chosen by measurement (``tools/compare.py``, 4 KiB random reads at QD32
#: on this project's virtio disk): the whole queue in one call comes back
#: as one burst and the device idles while it is turned around; one per
#: call costs a system call per request; a few per call keep it fed.
DIRECT_SUBMIT_BATCH = 4
_READ, _WRITE = Op.READ, Op.WRITE
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
_BOOL = frozenset({bool})
_NO_BOOLS = frozenset({array, range})  # sequences that cannot hold a bool
_get_ident = threading.get_ident

CACHE_MODES = ("writeback", "none", "writethrough", "directsync", "unsafe")
ENGINES = tuple(ENGINE_TABLE)


class Image:
    """See ``open_image``.

    Threads: an image belongs to the first thread that uses it (its queues,
    deferred requests and the io_uring engine's ring are updated without
    locks); a call from any other thread raises ``uring.RingThreadError``.
    ``release_thread()`` in the owning thread hands it over; an image
    whose thread has ended is taken over by the next user.  To do I/O
    from several threads, open the file once per thread.  (The ``threads``
    engine's workers are the image's own: completions still reach the
    caller through ``poll``/``wait`` in the owning thread.)

    Errors: a request is checked when submitted (buffers bytes-like and
    C-contiguous, offset and length ints in range, callback callable); a
    bad one raises ``TypeError``/``ValueError`` and leaves the image as it
    was.  A request that fails later (in the kernel, or in an engine that
    cannot run it) fails alone, its ``error`` an ``OSError`` with the errno
    and the op and range named.  A completion callback that raises does not
    cost the other completions of its batch: they are all delivered, then
    the ``poll``/``wait`` that reaped them raises the first exception (and
    logs any others of that call on the ``uring.block`` logger).
    ``close`` always closes the engine and the file.
    """

    def __init__(self, path: "str | os.PathLike[str]", *, aio: str = "auto",
                 cache: str = "writeback", queue_depth: int = 64, read_only: bool = False,
                 fixed_files: bool = False, fixed_buffers: bool = False, sqpoll: bool = False,
                 iopoll: bool = False, faults: Optional[IoFaults] = None,
                 kernel: Any = None, max_batch: Optional[int] = None,
                 submit_batch: Optional[int] = None) -> None:
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
        if queue_depth.__class__ is bool or not isinstance(queue_depth, int):
            raise TypeError(f"queue_depth must be an int, not {type(queue_depth).__name__}")
        if submit_batch is not None:
            if submit_batch.__class__ is not int:
                raise TypeError(f"submit_batch must be an int, not {type(submit_batch).__name__}")
            if submit_batch < 0:
                raise ValueError(f"submit_batch must be >= 0, got {submit_batch}")
        _check_max_batch(max_batch)  # before the file is opened: nothing to undo
        if not 1 <= queue_depth <= 32768:
            raise ValueError(f"queue_depth must be in 1..32768 (the kernel's IORING_MAX_ENTRIES), "
                             f"got {queue_depth}")
        self._owner = ThreadOwner(
            "block image", "Open the file once per thread, or call release_thread() in its "
            "thread to hand it over")
        self.path = os.fspath(path)
        self.cache = cache
        self.direct = cache in ("none", "directsync")
        self.no_flush = cache == "unsafe"
        flags = os.O_RDONLY if read_only else os.O_RDWR
        if self.direct:
            flags |= os.O_DIRECT
        if cache in ("writethrough", "directsync"):
            flags |= os.O_DSYNC
        self.read_only = read_only
        self.fd = os.open(self.path, flags | os.O_CLOEXEC)
        try:
            st = os.fstat(self.fd)
            self.is_block_device = stat.S_ISBLK(st.st_mode)
            # a block device's fallocate ranges must be whole logical
            # sectors, whatever the cache mode (0: not a block device)
            self.logical_block_size = logical_block_size(self.fd)
            if self.direct:
                self.request_alignment, self.memory_alignment = probe_alignment(self.fd)
            else:
                self.request_alignment = self.memory_alignment = 1
            opts = dict(fixed_files=fixed_files, sqpoll=sqpoll, iopoll=iopoll, kernel=kernel)
            self.auto_reason = ""
            if iopoll and not self.direct:
                raise ValueError("iopoll needs O_DIRECT: use cache=none or directsync")
            if aio == "auto":
                self.engine = self._auto(queue_depth, faults, max_batch, opts)
            else:
                self.engine = make_engine(aio, self.fd, queue_depth, faults, max_batch, **opts)
            try:
                if fixed_buffers and not self.engine.supports(Capability.FIXED_BUFFERS):
                    raise ValueError(f"fixed_buffers: aio={self.engine.name} has no registered "
                                     f"buffers (only io_uring does)")
                if iopoll:
                    self.engine.check_iopoll()
            except BaseException:
                self.engine.close()
                raise
        except BaseException:
            os.close(self.fd)
            raise
        self.fixed_buffers = fixed_buffers
        self.engine.granule = self.request_alignment
        self.engine.block_device = self.is_block_device
        self.engine.submit_batch = (submit_batch if submit_batch is not None
                                    else DIRECT_SUBMIT_BATCH if self.direct else 0)
        self.aio = self.engine.name
        self._outstanding = 0  # outer requests not finished
        self._collect_outstanding = 0  # of them, collected ones (batch, no callback)
        self._collected: List[BlockRequest] = []  # finished, for reap()
        self._rmw_active = 0
        self._deferred: Deque[Tuple[BlockRequest, bool]] = deque()
        self._raised: List[BaseException] = []  # callbacks of requests finished at submit
        self.bounced = 0
        self.rmw = 0

    def _auto(self, queue_depth: int, faults: Optional[IoFaults], max_batch: Optional[int],
              opts: dict) -> Engine:
        """``aio=auto``: io_uring if it can be set up, else Linux AIO for
        O_DIRECT, else threads; ``auto_reason`` says why."""
        reasons = []
        try:
            engine = make_engine("io_uring", self.fd, queue_depth, faults, max_batch, **opts)
            self.auto_reason = "io_uring: available"
            return engine
        except OSError as exc:
            reasons.append(f"io_uring unavailable ({exc})")
        if self.direct:
            try:
                engine = make_engine("native", self.fd, queue_depth, faults, max_batch)
                self.auto_reason = "; ".join(reasons + ["native: Linux AIO with O_DIRECT"])
                return engine
            except OSError as exc:
                reasons.append(f"native unavailable ({exc})")
        else:
            reasons.append("native skipped (without O_DIRECT Linux AIO blocks in io_submit)")
        self.auto_reason = "; ".join(reasons + ["threads"])
        return make_engine("threads", self.fd, queue_depth, faults, max_batch)

    # -- facts -------------------------------------------------------------------

    @property
    def size(self) -> int:
        if self.is_block_device:
            return os.lseek(self.fd, 0, os.SEEK_END)
        return os.fstat(self.fd).st_size

    def __repr__(self) -> str:
        return (f"<Image {self.path!r} aio={self.aio} cache={self.cache} "
                f"qd={self.engine.queue_depth}>")

    def register_buffers(self, buffers: Sequence[Any]) -> None:
        """io_uring with ``fixed_buffers``: register *buffers*; requests whose
        buffer lies inside one go as READ_FIXED/WRITE_FIXED."""
        if not self.fixed_buffers:
            raise ValueError("register_buffers needs fixed_buffers=True at open")
        self.engine.register_buffers(buffers)

    def supports(self, capability: "Capability | str") -> bool:
        """Whether this image's engine can do *capability* (a ``Capability``
        or its name: ``fixed_buffers``, ``fixed_files``, ``sqpoll``,
        ``iopoll``)."""
        return self.engine.supports(capability)

    # -- submission (non-blocking) --------------------------------------------------

    # Every submit checks what it is given before anything is queued: the
    # buffers (bytes-like, C-contiguous, writable for a read), the offset
    # and length (ints, not bools, in 0..2**63-1), the callback (callable
    # or None) and a writing op on a read-only image.  A refused request
    # raises TypeError/ValueError/PermissionError and leaves the image as
    # it was: nothing queued, nothing counted.  (O_DIRECT alignment is not
    # refused: a misaligned buffer or range is bounced or widened, below.)

    def submit_readv(self, buffers: Sequence[Any], offset: int,
                     callback: Optional[Callback] = None) -> BlockRequest:
        views = as_views(buffers, writable=True)
        return self._submit(BlockRequest(Op.READ, offset, total(views), views, callback))

    def submit_writev(self, buffers: Sequence[Any], offset: int,
                      callback: Optional[Callback] = None) -> BlockRequest:
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        views = as_views(buffers, writable=False)
        return self._submit(BlockRequest(Op.WRITE, offset, total(views), views, callback))

    def submit_read(self, buf: Any, offset: int, callback: Optional[Callback] = None) -> BlockRequest:
        v, address = view_and_address(buf, True)
        return self._submit(BlockRequest(_READ, offset, v.nbytes, [v], callback, None, address))

    def submit_write(self, data: Any, offset: int, callback: Optional[Callback] = None) -> BlockRequest:
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        v, address = view_and_address(data, False)
        return self._submit(BlockRequest(_WRITE, offset, v.nbytes, [v], callback, None, address))

    def submit_flush(self, callback: Optional[Callback] = None) -> BlockRequest:
        req = BlockRequest(Op.FLUSH, 0, 0, [], callback)
        if self.no_flush:  # cache=unsafe: flush is a no-op
            if callback is not None and not callable(callback):
                raise TypeError(f"callback must be callable, not {type(callback).__name__}")
            self._check_open()
            return self._finished_at_submit(req)
        return self._submit(req)

    def submit_discard(self, offset: int, length: int,
                       callback: Optional[Callback] = None) -> BlockRequest:
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        return self._submit(BlockRequest(Op.DISCARD, offset, length, [], callback))

    def submit_write_zeroes(self, offset: int, length: int,
                            callback: Optional[Callback] = None) -> BlockRequest:
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        return self._submit(BlockRequest(Op.WRITE_ZEROES, offset, length, [], callback))

    def release_thread(self) -> None:
        """Hand the image (and its engine's ring) to the next thread that
        uses it; call in the owning thread with nothing in flight."""
        self._owner.release()
        self.engine.release_thread()

    def check_open(self) -> None:
        """Raise unless the image is open and this thread may use it (the
        first user owns it: see the class docstring)."""
        self._check_open()

    def wait_for_rmw(self) -> None:
        """Block until no O_DIRECT read-modify-write is running or waiting
        (the requests queued behind one are then on their way)."""
        while self._rmw_active or self._deferred:
            self.step(True)

    @property
    def submit_batch(self) -> int:
        """The most requests one submit call hands the kernel (0: all that
        are queued); see ``open_image``."""
        return self.engine.submit_batch

    def step(self, wait: bool = False) -> None:
        """Handle completions once: those ready, or (with *wait*) at least
        one if anything is in flight.  A callback's exception is raised
        after its batch (see ``poll``)."""
        engine = self.engine
        if not (wait and (engine.in_flight or engine.pending or self._deferred)):
            self.poll()
            return
        if self._owner.ident != _get_ident():
            self._owner.claim()
        if engine.closed or self.fd < 0:
            self._check_open()
        if self._raised:
            self._raise_early()
        self._progress(engine)

    def _check_open(self) -> None:
        if self._owner.ident != _get_ident():
            self._owner.claim()
        if self.engine.closed or self.fd < 0:
            if self.engine.forked:
                self.engine.refuse_closed()
            raise ValueError(f"I/O on a closed image {self.path!r}")

    def _submit(self, req: BlockRequest) -> BlockRequest:
        """Check a new request and queue it.  The checks are those of
        ``_check_open`` and ``_check_range``, written out: this runs once
        per request, and a plain read or write (buffered, nothing behind a
        read-modify-write) goes from here straight to the engine's queue,
        the steps of ``_queue`` it needs done in place."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        engine = self.engine
        if engine.closed or self.fd < 0:
            self._check_open()
        offset, length = req.offset, req.length
        if offset.__class__ is not int:
            offset = req.offset = _as_int(offset, "offset")
        if length.__class__ is not int:
            length = req.length = _as_int(length, "length")
        if not 0 <= offset <= _MAX_OFFSET - length or length < 0:
            _check_range(offset, length)
        callback = req.callback
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        op = req.op
        if length and (op is _READ or op is _WRITE) and not (
                self.direct or self._deferred or self._rmw_active):
            req.image = self
            self._outstanding += 1
            engine.enqueue(req)
        else:
            self._queue(req)
        return req

    def _queue(self, req: BlockRequest) -> None:
        """Queue a checked request: finished at once if it has nothing to
        do, bounced or widened if O_DIRECT would refuse it, else to the
        engine (or behind a read-modify-write)."""
        req.image = self
        self._outstanding += 1
        if req.collect:
            self._collect_outstanding += 1
        if not req.length and req.op is not Op.FLUSH:
            self._finished_at_submit(req)  # nothing to do (fallocate would say EINVAL)
            return
        if self.direct and (req.op is Op.READ or req.op is Op.WRITE) and not self._aligned(req):
            self._submit_unaligned(req)
        elif ((req.op is Op.DISCARD or req.op is Op.WRITE_ZEROES) and self.logical_block_size
              and (req.offset | req.length) % self.logical_block_size):
            self._split_fallocate(req)
        else:
            self._enqueue_or_defer(req, False)

    def _split_fallocate(self, outer: BlockRequest) -> None:
        """A discard or write-zeroes on a block device whose range is not
        whole logical sectors (``blkdev_fallocate`` says EINVAL to that,
        in every cache mode): the whole sectors go to fallocate, the
        partial ones at either end are written with zeros (through
        ``_queue``: bounced or read-modify-written under O_DIRECT), so the
        range reads back zeros, neighbours intact, as on a file."""
        lbs = self.logical_block_size
        start, end = outer.offset, outer.offset + outer.length
        mid_start = min(-(-start // lbs) * lbs, end)
        mid_end = max(end // lbs * lbs, mid_start)
        parts = []
        if mid_end > mid_start:
            parts.append((outer.op, mid_start, mid_end))
        parts += [(Op.WRITE, a, b) for a, b in ((start, mid_start), (mid_end, end)) if b > a]
        left = [len(parts)]
        errors: List[int] = []

        def part_done(r: BlockRequest) -> None:
            if r.error is not None and not errors:
                errors.append(r.error.errno or errno.EIO)
            left[0] -= 1
            if not left[0]:
                if errors:
                    outer.fail(errors[0])
                else:
                    outer.complete(0)

        for op, a, b in parts:
            views = [memoryview(bytes(b - a))] if op is Op.WRITE else []
            self._queue(BlockRequest(op, a, b - a, views, part_done))

    # -- arenas ---------------------------------------------------------------------------

    def arena(self, slots: int, slot_size: int, *, write: bool = False,
              registered: bool = False) -> "BlockArena":
        """A fixed-slot queue of reads (or, with *write*, writes) of
        *slot_size* bytes over one page-aligned arena: fio's pool of
        ``io_u``s.  *registered* (``fixed_buffers=True`` at open, an engine
        with ``FIXED_BUFFERS``): the arena is registered with the kernel
        (fio's ``fixedbufs``).  See ``BlockArena``."""
        return BlockArena(self, slots, slot_size, write, registered)

    # -- batches -------------------------------------------------------------------------

    # A batch is many reads or writes checked and queued by one call and
    # submitted together (the engine plugged around them: one submit system
    # call, up to max_batch at a time).  Its requests that have no callback
    # are *collected*: once finished they wait in a list that ``reap``
    # returns.  ``resubmit`` sends finished requests again at new offsets,
    # as fio reuses its io_u's: no new objects, the buffers already held.

    def submit_reads(self, buffers: Sequence[Any], offsets: Sequence[int],
                     callback: Optional[Callback] = None,
                     tags: Optional[Sequence[Any]] = None) -> List[BlockRequest]:
        """One read per (buffer, offset) pair, submitted as one batch.

        Everything is checked before anything is queued (all or nothing:
        a bad buffer, offset or tag raises and leaves the image as it
        was).  ``tags[i]`` becomes request *i*'s ``tag``.  Without a
        *callback* the requests are collected for ``reap``."""
        return self._submit_batch(Op.READ, buffers, offsets, callback, tags)

    def submit_writes(self, buffers: Sequence[Any], offsets: Sequence[int],
                      callback: Optional[Callback] = None,
                      tags: Optional[Sequence[Any]] = None) -> List[BlockRequest]:
        """One write per (buffer, offset) pair; see ``submit_reads``."""
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        return self._submit_batch(Op.WRITE, buffers, offsets, callback, tags)

    def _submit_batch(self, op: Op, buffers: Sequence[Any], offsets: Sequence[int],
                      callback: Optional[Callback],
                      tags: Optional[Sequence[Any]]) -> List[BlockRequest]:
        self._check_open()
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if isinstance(buffers, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"expected a sequence of buffers, got one {type(buffers).__name__}")
        bufs, offs = list(buffers), list(offsets)
        tag_list = [None] * len(bufs) if tags is None else list(tags)
        if not len(bufs) == len(offs) == len(tag_list):
            raise ValueError(f"{len(bufs)} buffers, {len(offs)} offsets"
                             + ("" if tags is None else f", {len(tag_list)} tags")
                             + ": one of each per request")
        writable = op is Op.READ
        reqs = []
        for b, off, tag in zip(bufs, offs, tag_list):
            v = as_view(b, writable)
            if off.__class__ is not int:
                off = _as_int(off, "offset")
            _check_range(off, v.nbytes)
            req = BlockRequest(op, off, v.nbytes, [v], callback, tag)
            req.collect = callback is None
            reqs.append(req)
        self._queue_batch(reqs)
        return reqs

    def resubmit(self, requests: Sequence[BlockRequest], offsets: Sequence[int],
                 ops: Optional[Sequence[Op]] = None) -> None:
        """Send finished requests of this image again, each at its new
        offset (and, with *ops*, as a read or a write), with the same
        buffers, tags and callbacks, as one batch.

        All or nothing, checked first: every request must be a read or a
        write this image finished (``ValueError`` for one still in flight,
        or one of another image), offsets ints in range, a read's buffer
        writable, no write on a read-only image."""
        self._check_open()
        reqs = requests if requests.__class__ is list else list(requests)
        offs = offsets if offsets.__class__ is list else list(offsets)
        if len(offs) != len(reqs):
            raise ValueError(f"{len(reqs)} requests, {len(offs)} offsets: one offset per request")
        if ops is not None:
            self._check_ops(reqs, ops)
        if len({id(r) for r in reqs}) != len(reqs):
            raise ValueError("a request is given twice")
        # the checks, for every request before any is touched: one test
        # each in the common case, the reasons only when one fails
        limit = _MAX_OFFSET
        plain = True  # every request nonempty: none finishes at submit
        for i, (req, off) in enumerate(zip(reqs, offs)):
            if req.__class__ is not BlockRequest or req.image is not self or not req.finished \
                    or off.__class__ is not int or not 0 < req.length <= limit - off \
                    or off < 0 or (ops is None and req.op is not _READ and req.op is not _WRITE):
                if self._check_resubmit(i, req, off, ops is None):
                    plain = False
                if off.__class__ is not int:
                    if offs is offsets:
                        offs = list(offs)
                    offs[i] = _as_int(off, "offset")
                    _check_range(offs[i], req.length)
        if ops is None:
            for req, off in zip(reqs, offs):
                req.rearm(off)
        else:
            for req, off, op in zip(reqs, offs, ops):
                req.rearm(off, op)
        if plain and not (self.direct or self._deferred or self._rmw_active):
            self._hand_over(reqs)  # checked above: straight to the engine
        else:
            self._queue_batch(reqs)

    def _check_resubmit(self, i: int, req: Any, off: Any, same_op: bool) -> bool:
        """Why ``requests[i]`` cannot be resubmitted at *off*, raised; or
        True if it can but has nothing to do (zero length)."""
        if req.__class__ is not BlockRequest or req.image is not self:
            raise ValueError(f"requests[{i}]: {req!r} is not a request of this image")
        if not req.finished:
            raise ValueError(f"requests[{i}]: {req!r} is still in flight")
        if same_op and req.op is not _READ and req.op is not _WRITE:
            raise ValueError(f"requests[{i}]: only reads and writes are resubmitted, "
                             f"not {req.op.value}")
        if off.__class__ is int:
            _check_range(off, req.length)
        return not req.length

    def _check_ops(self, reqs: List[BlockRequest], ops: Sequence[Op]) -> None:
        """``resubmit(ops=)``: one read or write per request; a read's
        buffers writable; no write on a read-only image."""
        if len(ops) != len(reqs):
            raise ValueError(f"{len(reqs)} requests, {len(ops)} ops: one op per request")
        for i, (req, op) in enumerate(zip(reqs, ops)):
            if op is _WRITE:
                if self.read_only:
                    raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
            elif op is _READ:
                if any(v.readonly for v in getattr(req, "views", ())):
                    raise TypeError(f"requests[{i}]: cannot read into a read-only buffer")
            else:
                raise ValueError(f"ops[{i}]: {op!r}: only reads and writes are resubmitted")

    def _queue_batch(self, reqs: List[BlockRequest]) -> None:
        """Queue checked requests and submit them together: straight to the
        engine in one call when nothing is waiting behind a
        read-modify-write (the common case), else one by one."""
        if self._deferred or self._rmw_active:
            engine = self.engine
            engine.plug()
            try:
                for req in reqs:
                    self._queue(req)
            finally:
                engine.unplug()
            return
        direct = self.direct
        ready = []
        for req in reqs:
            if not req.length or (direct and not self._aligned(req)):
                self._queue(req)  # finished at once, or bounced / widened
                continue
            req.image = self
            ready.append(req)
        self._hand_over(ready)

    def _hand_over(self, ready: List[BlockRequest]) -> None:
        """Count checked requests of this image as outstanding and give
        them to the engine in one call (one submit)."""
        self._outstanding += len(ready)
        self._collect_outstanding += [r.collect for r in ready].count(True)
        self.engine.enqueue_many(ready)

    def reap(self, wait: bool = False, min_complete: int = 1) -> List[BlockRequest]:
        """The collected requests (batch requests without a callback) that
        have finished, in the order they finished, handed over once.

        Completions that are ready are handled first (callbacks of other
        requests run as in ``poll``); with *wait*, this blocks until at
        least *min_complete* collected requests are finished, or none is
        outstanding.  A callback that raises: as in ``poll``, the
        completions of its batch are still handled (and collected), then
        the exception is raised; the collected ones come with the next
        ``reap``.  On a closed image: ``ValueError``, as for a submit."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        engine = self.engine
        if engine.closed or self.fd < 0:
            self._check_open()
        if self._raised:
            self._raise_early()
        if wait:
            while len(self._collected) < min_complete and self._collect_outstanding:
                self._progress(engine)
        else:
            engine.poll(wait=False)
        done = self._collected
        self._collected = []
        return done

    def _finished_at_submit(self, req: BlockRequest) -> BlockRequest:
        """Finish a request with nothing to do (zero length; flush with
        cache=unsafe) at once.  Its callbacks run now; what they raise is
        kept for the next ``poll``/``wait``, like any callback's, so the
        submit itself returns the request."""
        try:
            req.complete(0)
        except BaseException as exc:  # noqa: BLE001 - raised by the next poll/wait
            self._raised.append(exc)
        return req

    def _raise_early(self) -> None:
        errors, self._raised = self._raised, []
        raise_deferred(errors)

    def _enqueue_or_defer(self, req: BlockRequest, rmw: bool) -> None:
        """Requests keep their order behind a read-modify-write: while one
        is waiting or running, everything after it waits here."""
        if self._deferred or self._rmw_active or rmw:
            self._deferred.append((req, rmw))
            self._pump()
        else:
            self.engine.enqueue(req)

    def _pump(self) -> None:
        deferred, engine = self._deferred, self.engine
        while deferred and not self._rmw_active:
            req, rmw = deferred[0]
            if rmw:
                if engine.in_flight or engine.pending:
                    return  # a read-modify-write starts on an idle queue
                deferred.popleft()
                self._start_rmw(req)
            else:
                deferred.popleft()
                engine.enqueue(req)

    def request_finished(self, req: BlockRequest) -> None:
        """A request submitted through this image has finished: its own
        bookkeeping (``BlockRequest`` calls this before its callbacks)."""
        self._outstanding -= 1
        if req.collect:
            self._collect_outstanding -= 1
            self._collected.append(req)
        if self._deferred:
            try:
                self._pump()
            except BaseException as exc:  # noqa: BLE001 - raised by the next poll/wait
                # (a signal handler's, as it started: the deferred requests
                # wait, and go when the queue is next idle, in _progress)
                self._raised.append(exc)

    # -- O_DIRECT alignment ------------------------------------------------------------

    def _aligned(self, req: BlockRequest) -> bool:
        ra, ma = self.request_alignment, self.memory_alignment
        if req.offset % ra or req.length % ra:
            return False
        views = req.views
        if len(views) == 1 and req.address:  # a resubmitted request: its address is known
            return not (views[0].nbytes % ra or req.address % ma)
        for v in views:
            if v.nbytes % ra:
                return False
            if address_of(v) % ma:
                return False
        return True

    def _submit_unaligned(self, outer: BlockRequest) -> None:
        """Never hand O_DIRECT a misaligned buffer, offset or length (the
        kernel would answer EINVAL).  A misaligned *buffer* with an aligned
        range is bounced through aligned memory; a misaligned *range* is
        widened to whole blocks: a read reads them and copies out, a write
        reads them, patches, and writes them back (read-modify-write),
        serialised against every other request so no neighbour's write in
        the same block is lost."""
        self.bounced += 1
        start, end = self._widen(outer)
        if outer.op is Op.WRITE and (start, end) != (outer.offset, outer.offset + outer.length):
            self._enqueue_or_defer(outer, True)
            return
        bounce = aligned_buffer(end - start)
        if outer.op is Op.READ:

            def copy_out(r: BlockRequest) -> None:
                if r.error is None:
                    _scatter(bounce, outer.offset - start, outer.views)
                _finish_from(outer, r)

            inner = BlockRequest(Op.READ, start, end - start, [memoryview(bounce)], copy_out)
        else:
            _gather(outer.views, bounce, 0)
            inner = BlockRequest(Op.WRITE, start, end - start, [memoryview(bounce)],
                            lambda r: _finish_from(outer, r))
        self._enqueue_or_defer(inner, False)

    def _widen(self, req: BlockRequest) -> Tuple[int, int]:
        """The request's range widened to whole O_DIRECT blocks."""
        ra = self.request_alignment
        return req.offset // ra * ra, -(-(req.offset + req.length) // ra) * ra

    def _start_rmw(self, outer: BlockRequest) -> None:
        self.rmw += 1
        self._rmw_active += 1
        start, end = self._widen(outer)
        bounce = aligned_buffer(end - start)
        view = memoryview(bounce)
        # The queue is idle (a read-modify-write starts only then, and all
        # that comes after it waits until it is done): the size now is the
        # size the write starts from, and nothing else of ours can move it.
        size_before = -1 if self.is_block_device else os.fstat(self.fd).st_size

        def written(r: BlockRequest) -> None:
            self._rmw_active -= 1
            if end > size_before >= 0:
                # The widened write ran past end of file: the file is now
                # a whole block longer than a plain pwrite would leave it.
                try:
                    self._trim(max(size_before, outer.offset + outer.length))
                except OSError as exc:
                    if r.error is None:
                        outer.fail(exc.errno or errno.EIO, exc)
                        return
            _finish_from(outer, r)

        def patched(r: BlockRequest) -> None:
            if r.error is not None:
                written(r)
                return
            _gather(outer.views, bounce, outer.offset - start)
            self.engine.enqueue(BlockRequest(Op.WRITE, start, end - start, [view], written))

        self.engine.enqueue(BlockRequest(Op.READ, start, end - start, [view], patched))

    def _trim(self, size: int) -> None:
        """Cut the file back to *size* if a widened O_DIRECT write left it
        longer (durably so under O_DSYNC, as the write itself was)."""
        if os.fstat(self.fd).st_size > size:
            os.ftruncate(self.fd, size)
            if self.cache == "directsync":
                os.fdatasync(self.fd)

    # -- progress --------------------------------------------------------------------------

    # Callbacks that raise: a completion callback runs in the poll()/wait()
    # that reaps its request.  If it raises, every other completion reaped
    # in that call is still delivered (requests finished, callbacks run,
    # the queue refilled); then that call raises the first exception,
    # unchanged, and logs any further ones of the same call on the
    # "uring.block" logger (Python 3.11+: a note on the raised one counts
    # them).  Nothing is left pending: call wait() again to go on.
    # (Requests with nothing to do finish at submit; their callbacks'
    # exceptions are raised by the next poll()/wait().)

    def poll(self) -> int:
        """Handle completions that are ready, without blocking.  On a
        closed image: ``ValueError``, as for a submit (whatever the engine)."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        engine = self.engine
        if engine.closed or self.fd < 0:
            self._check_open()
        if self._raised:
            self._raise_early()
        return engine.poll(wait=False)

    def wait(self, req: Optional[BlockRequest] = None) -> None:
        """Block until *req* (default: everything submitted) has finished.
        A callback's exception is raised once its batch is delivered (see
        above); the requests still outstanding then are not waited for.
        On a closed image: ``ValueError``, as for a submit."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        engine = self.engine
        if engine.closed or self.fd < 0:
            self._check_open()
        if self._raised:
            self._raise_early()
        if req is None:
            while self._outstanding:
                self._progress(engine)
            return
        while not req.finished:
            self._progress(engine)

    def _progress(self, engine: Engine) -> None:
        if self._deferred and not engine.in_flight and not engine.pending:
            self._pump()  # an idle queue: a waiting read-modify-write can start
        if engine.plugged and not engine.in_flight:
            raise RuntimeError("waiting while plugged with nothing in flight: unplug first")
        engine.poll(wait=True)

    def plug(self) -> None:
        if self._owner.ident != _get_ident():
            self._owner.claim()
        self.engine.plug()

    def unplug(self) -> None:
        if self._owner.ident != _get_ident():
            self._owner.claim()
        self.engine.unplug()

    def plugged(self) -> "_Plugged":
        """Queue everything submitted in the block; submit it as one batch
        at the end (QEMU's ``blk_io_plug``/``blk_io_unplug``).  A loop may
        enter it once per batch: it is a plain object, no generator."""
        return _Plugged(self)

    # -- synchronous API ----------------------------------------------------------------------

    def _run(self, req: BlockRequest) -> int:
        self.wait(req)
        return req.value()

    def pread(self, length: int, offset: int) -> bytes:
        buf = bytearray(length)
        self._run(self.submit_read(buf, offset))
        return bytes(buf)

    def readinto(self, buf: Any, offset: int) -> int:
        return self._run(self.submit_read(buf, offset))

    def preadv(self, buffers: Sequence[Any], offset: int) -> int:
        return self._run(self.submit_readv(buffers, offset))

    def pwrite(self, data: Any, offset: int) -> int:
        return self._run(self.submit_write(data, offset))

    def pwritev(self, buffers: Sequence[Any], offset: int) -> int:
        return self._run(self.submit_writev(buffers, offset))

    def flush(self) -> None:
        self._run(self.submit_flush())

    def discard(self, offset: int, length: int) -> None:
        self._run(self.submit_discard(offset, length))

    def write_zeroes(self, offset: int, length: int) -> None:
        self._run(self.submit_write_zeroes(offset, length))

    # -- life --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish everything in flight, then close the engine and the file.

        Always closes both, whatever happens on the way: if a completion
        callback raises while the last requests finish, the others are
        still finished, the engine and the file are closed, and then the
        first exception is raised (later ones are logged on the
        ``uring.block`` logger).  A second ``close()`` does nothing.  In a
        fork child only the child's copy of the file descriptor is closed:
        the requests in flight are the parent's (see ``Engine._in_fork_child``)."""
        if self.fd < 0:
            return
        if self.engine.forked:
            fd, self.fd = self.fd, -1
            os.close(fd)
            return
        if self._owner.ident != _get_ident():
            self._owner.claim()
        errors, self._raised = self._raised, []
        try:
            try:
                if self.engine.plugged:
                    self.engine.plugged = 1
                    self.engine.unplug()
                while self._outstanding:
                    before = self._outstanding
                    try:
                        self.wait()
                    except BaseException as exc:  # noqa: BLE001 - raised below
                        errors.append(exc)
                        if self._outstanding >= before:
                            break  # no progress: stop waiting, close anyway
            except BaseException as exc:  # noqa: BLE001 - raised below
                errors.append(exc)
            try:
                self.engine.close()
            except BaseException as exc:  # noqa: BLE001 - raised below
                errors.append(exc)
        finally:
            fd, self.fd = self.fd, -1
            os.close(fd)
        if errors:
            raise_deferred(errors)

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Plugged:
    """``Image.plugged()``: ``plug`` on entry, ``unplug`` on exit."""

    __slots__ = ("image",)

    def __init__(self, image: Image) -> None:
        self.image = image

    def __enter__(self) -> Image:
        self.image.plug()
        return self.image

    def __exit__(self, *exc: Any) -> None:
        self.image.unplug()


class BlockArena:
    """*slots* buffers of *slot_size* bytes cut from one page-aligned arena,
    each read (or written) again and again at new offsets; completions come
    back as two arrays, the slots and their results, with no Python object
    per request.  Made by ``Image.arena``.

    On an engine with ``Capability.ARENA`` (io_uring or native, without a
    fault plan) the slots are the engine's own fixed-slot queue: on
    io_uring an ``ArenaQueue`` on its ring (each slot's SQE formatted once,
    a submit copies the chosen slots' SQEs into the SQ and writes their
    offsets, the CQEs taken as the CQ's own words), on native an
    ``AioArena`` on its AIO context (each slot's iocb formatted once, a
    submit writes the chosen slots' offsets and hands their pointers to
    ``io_submit``, the events taken as words).  On the others (threads, a
    fault plan) each slot is a ``BlockRequest``, resubmitted.
    Either way the engine's rules hold: a result is the whole *slot_size*
    (a short transfer is finished through the image for the rest, end of
    file zero-filled; ``EAGAIN``/``EINTR`` retried) or ``-errno``
    (``failures`` names the op, slot and offset of each).

    ``submit`` is all or nothing: slots valid, idle and given once,
    offsets ints >= 0 (aligned under O_DIRECT), room in the queue depth;
    a bool slot or offset is a ``TypeError``, as for ``pread``.
    On the ring the SQEs reach the kernel with the next ``reap``, which
    submits them and waits in one system call (``io_uring_submit_and_wait``);
    on the other engines they go at once.
    Arena I/O counts in the engine's ``in_flight``; ``Image.close`` waits
    for it.  One thread, the image's.
    """

    def __init__(self, image: Image, slots: int, slot_size: int, write: bool,
                 registered: bool = False) -> None:
        engine = image.engine
        for name, value, high in (("slots", slots, engine.queue_depth),
                                  ("slot_size", slot_size, 1 << 30)):
            if value.__class__ is not int:
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 1 <= value <= high:
                raise ValueError(f"{name} must be 1..{high}"
                                 + (" (the queue depth)" if name == "slots" else "")
                                 + f", got {value}")
        if write and image.read_only:
            raise PermissionError(errno.EBADF, f"{image.path} is open read-only")
        if registered and not image.fixed_buffers:
            raise ValueError("a registered arena needs fixed_buffers=True at open")
        if image.direct and slot_size % max(image.request_alignment, image.memory_alignment):
            raise ValueError(f"O_DIRECT: slot_size {slot_size} is not a multiple of the "
                             f"device's alignment ({image.request_alignment} bytes)")
        image.check_open()
        self.image = image
        self.slots = slots
        self.slot_size = slot_size
        self.write = write
        self.op = Op.WRITE if write else Op.READ
        self._offsets = array("q", bytes(8 * slots))
        # slots in flight as requests: all of them without an arena queue;
        # with one, those whose short transfer is being finished
        self._busy: set = set()
        self._done_slots = array("I")
        self._done_res = array("i")
        self._retries: dict = {}
        self._queue: Any = None
        self._reqs: List[Optional[BlockRequest]] = [None] * slots
        if engine.supports(Capability.ARENA):
            self._queue = engine.open_arena(slots, slot_size, write, self._landed, registered)
            self.arena: Any = self._queue.arena
        else:
            self.arena = aligned_buffer(slots * slot_size)
            if registered:
                engine.register_buffers([self.arena])  # refused by name where there are none
        whole = memoryview(self.arena)
        self._slot_views = [whole[i * slot_size:(i + 1) * slot_size] for i in range(slots)]

    @property
    def in_flight(self) -> int:
        """Slots submitted whose result ``reap`` has not handed back: the
        queue's busy slots (on an engine with arena queues) and those
        finishing as requests.  Read from the slots themselves, never
        counted beside them, so an interruption inside a submit cannot
        leave a count that no completion will bring down."""
        queued = self._queue.in_flight if self._queue is not None else 0
        return queued + len(self._busy)

    def buffer(self, slot: int) -> memoryview:
        """Slot *slot*'s bytes: what a read filled, what a write sends."""
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} of {self.slots}")
        return self._slot_views[slot]

    def submit(self, slots: Sequence[int], offsets: Sequence[int]) -> None:
        """Read (write) ``slots[i]`` at ``offsets[i]``, as one batch."""
        image = self.image
        image.check_open()
        n = len(slots)
        if len(offsets) != n:
            raise ValueError(f"{n} slots and {len(offsets)} offsets")
        if not n:
            return
        try:
            offs = array("q", offsets)
        except (OverflowError, TypeError) as exc:
            raise TypeError(f"offsets must be ints ({exc})") from None
        # a bool is no slot or offset (as for pread), though array('q') and
        # indexing take one as 0/1: one C-level pass over the types of a
        # list; an array or a range holds none
        if slots.__class__ not in _NO_BOOLS and not _BOOL.isdisjoint(map(type, slots)):
            raise TypeError("slots must be ints, not bool")
        if offsets.__class__ not in _NO_BOOLS and not _BOOL.isdisjoint(map(type, offsets)):
            raise TypeError("offsets must be ints, not bool")
        if not offsets_within(offs, 0, _MAX_OFFSET - self.slot_size):
            raise ValueError(f"an offset is out of range: {min(offs)}..{max(offs)}")
        if image.direct and image.request_alignment > 1 and \
                any([o % image.request_alignment for o in offs]):
            raise ValueError(f"O_DIRECT: offsets must be multiples of "
                             f"{image.request_alignment} in an arena")
        if self.write:
            # a read-modify-write runs alone (its block is read, patched and
            # written back): a slot written meanwhile could be undone by it
            image.wait_for_rmw()
        engine = image.engine
        if engine.in_flight + n > engine.queue_depth:
            raise ValueError(f"{n} more would pass the queue depth ({engine.in_flight} of "
                             f"{engine.queue_depth} in flight): reap first")
        held = self._busy
        if self._queue is not None:
            # the queue checks the slots (valid, given once, idle) before it
            # touches anything; slots still finishing here are checked first
            if held and not held.isdisjoint(slots):
                raise ValueError(f"slots {sorted(held.intersection(slots))[:4]} are in flight")
            try:
                engine.arena_submit(self._queue, slots, offs)
            except (ValueError, TypeError):
                raise  # refused: nothing taken
            except BaseException:
                # interrupted inside (a signal handler's exception): what the
                # engine took comes back, maybe to be retried, at these offsets
                _consume(map(self._offsets.__setitem__, slots, offs))
                raise
        else:
            try:
                wanted = set(slots)
            except TypeError as exc:
                raise TypeError(f"slots must be ints ({exc})") from None
            if len(wanted) != n:
                raise ValueError("slots must be given once each")
            if min(slots) < 0 or max(slots) >= self.slots:
                raise ValueError(f"slots are 0..{self.slots - 1}")
            if not held.isdisjoint(wanted):
                raise ValueError(f"slots {sorted(held & wanted)[:4]} are in flight")
            self._submit_requests(slots, offs)
            held |= wanted
        _consume(map(self._offsets.__setitem__, slots, offs))

    def _submit_requests(self, slots: Sequence[int], offs: Sequence[int]) -> None:
        """Engines without arena queues: one request per slot, made once."""
        reqs = self._reqs
        new = [(s, o) for s, o in zip(slots, offs) if reqs[s] is None]
        again = [(r, o) for r, o in zip(map(reqs.__getitem__, slots), offs) if r is not None]
        image = self.image
        if again:
            image.resubmit([r for r, _ in again], [o for _, o in again])
        if new:
            submit = image.submit_writes if self.write else image.submit_reads
            made = submit([self._slot_views[s] for s, _ in new], [o for _, o in new],
                          self._request_done, [s for s, _ in new])
            for req in made:
                reqs[req.tag] = req

    def _request_done(self, req: BlockRequest) -> None:
        self._finish(req.tag, req)

    def _finish(self, slot: int, req: BlockRequest) -> None:
        self._busy.discard(slot)
        self._done_slots.append(slot)
        if req.error is None:
            self._done_res.append(self.slot_size)
        else:
            self._done_res.append(-(req.error.errno or errno.EIO))

    def _landed(self, slots: "array[int]", res: "array[int]") -> None:
        """The engine's sink: this arena's CQEs, as arrays."""
        size = self.slot_size
        retries = self._retries  # a slot's retry budget is per submit: done, it goes
        if res.count(size) == len(res):  # all whole: the common case
            self._done_slots.extend(slots)
            self._done_res.extend(res)
            if retries:
                _consume(map(retries.pop, slots, repeat(None)))
            return
        for slot, r in zip(slots, res):
            if r == size:
                retries.pop(slot, None)
                self._done_slots.append(slot)
                self._done_res.append(r)
            elif r in (-errno.EAGAIN, -errno.EINTR) and \
                    self._retries.get(slot, 0) < MAX_RETRIES:
                self._retries[slot] = self._retries.get(slot, 0) + 1
                self.image.engine.arena_submit(self._queue, [slot], [self._offsets[slot]])
            elif r < 0:
                self._retries.pop(slot, None)
                self._done_slots.append(slot)
                self._done_res.append(r)
            else:
                # a short transfer: the rest through the image, with the
                # engine's rules (end of file zero-filled, ENOSPC for a
                # write that cannot go on); the slot finishes with it
                self._retries.pop(slot, None)
                self._busy.add(slot)  # idle in the queue, not here: finishing below
                rest = self._slot_views[slot][r:]
                offset = self._offsets[slot] + r
                image = self.image
                submit = image.submit_write if self.write else image.submit_read
                submit(rest, offset, partial(self._finish, slot))

    def reap(self, wait: bool = False) -> Tuple["array[int]", "array[int]"]:
        """The slots finished since the last ``reap`` and their results
        (``slot_size``, or ``-errno``), as two arrays; with *wait*, blocks
        until at least one, if any is in flight.  Completions of the
        image's other requests are handled on the way (their callbacks
        run, as in ``Image.poll``)."""
        image = self.image
        if wait and not self._done_slots and self.in_flight:
            while not self._done_slots and self.in_flight:
                image.step(True)
        else:
            image.step(False)
        slots, res = self._done_slots, self._done_res
        self._done_slots, self._done_res = array("I"), array("i")
        return slots, res

    def failures(self, slots: "array[int]", res: "array[int]") -> List[Tuple[int, OSError]]:
        """``(slot, OSError)`` for each failed slot of a ``reap``: the op,
        the slot and its offset named."""
        if not res or min(res) >= 0:
            return []
        what = f"{self.op.value} of {self.slot_size} bytes"
        return [(s, kernel_error(-r, what, f"{self.image.path} arena slot {s} at offset "
                                              f"{self._offsets[s]}"))
                for s, r in zip(slots, res) if r < 0]

    def __repr__(self) -> str:
        kind = "ring" if self._queue is not None else "requests"
        return (f"<BlockArena {self.op.value} {self.slots}x{self.slot_size} ({kind}) "
                f"in_flight={self.in_flight}>")


def _gather(views: Sequence[memoryview], buf: Any, at: int) -> None:
    """Copy *views* one after another into *buf* from offset *at*."""
    for v in views:
        buf[at: at + v.nbytes] = v
        at += v.nbytes


def _scatter(buf: Any, at: int, views: Sequence[memoryview]) -> None:
    """Fill *views* one after another from *buf* at offset *at*."""
    for v in views:
        v[:] = buf[at: at + v.nbytes]
        at += v.nbytes


def _finish_from(outer: BlockRequest, inner: BlockRequest) -> None:
    """Complete the caller's request with the outcome of the aligned one
    done on its behalf."""
    if inner.error is not None:
        outer.fail(inner.error.errno or errno.EIO)
    else:
        outer.complete(outer.length)


def _as_int(value: Any, name: str) -> int:
    """*value* as an int, for an offset or a length: an int subclass or an
    ``__index__`` (a numpy integer), never a bool, float or str."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None


def _check_range(offset: int, length: int) -> None:
    if not 0 <= offset <= _MAX_OFFSET - length or length < 0:
        raise ValueError(f"bad offset or length: {offset}, {length} (both must be "
                         f">= 0 and their sum at most 2**63-1)")


def open_image(path: "str | os.PathLike[str]", **options: Any) -> Image:
    """Open *path* as a block device with QEMU's options:

    aio:           ``io_uring``, ``native`` (Linux AIO), ``threads``, or
                   ``auto`` (the best that works; ``image.auto_reason`` says why).
    cache:         ``writeback`` (default), ``none``, ``writethrough``,
                   ``directsync``, ``unsafe`` (see the module docstring).
    queue_depth:   requests in the kernel's hands at once (default 64);
                   more wait in a software queue.
    submit_batch:  the most requests one submit call hands the kernel (fio's
                   iodepth_batch_submit): one ``io_uring_enter`` or
                   ``io_submit``; default ``DIRECT_SUBMIT_BATCH`` (4) under
                   O_DIRECT, else 0: all that are queued at once.  (The
                   threads engine has no submit call: its workers take
                   what is queued.)
    max_batch:     QEMU's aio-max-batch: submit while plugged once this many
                   are queued (default: half the queue depth).
    read_only:     open O_RDONLY.
    fixed_files, fixed_buffers, sqpoll, iopoll:  io_uring features.
    faults:        an ``IoFaults`` plan (tests).
    kernel:        io_uring's syscall seam, e.g. a ``FaultInjector`` (tests).
    """
    return Image(path, **options)


