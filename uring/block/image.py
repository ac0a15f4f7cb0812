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

import contextlib
import errno
import operator
import os
import stat
import threading
from collections import deque
from typing import Any, Deque, Iterator, List, Optional, Sequence, Tuple

from ..buffers import address_of
from ..ring import ThreadOwner
from .engine import Engine
from .faults import IoFaults
from .request import BlockRequest, Callback, Op, as_view, as_views, raise_deferred, total
from .sysops import aligned_buffer, probe_alignment

__all__ = ["CACHE_MODES", "ENGINES", "Image", "open_image"]

_MAX_OFFSET = (1 << 63) - 1
_get_ident = threading.get_ident

CACHE_MODES = ("writeback", "none", "writethrough", "directsync", "unsafe")
ENGINES = ("io_uring", "native", "threads")


def _make_engine(aio: str, fd: int, queue_depth: int, faults: Optional[IoFaults],
                 opts: dict) -> Engine:
    max_batch = opts.pop("max_batch", None)
    if aio == "io_uring":
        from .engine_uring import UringEngine

        return UringEngine(fd, queue_depth, faults=faults, max_batch=max_batch, **opts)
    for key in ("fixed_files", "sqpoll", "iopoll", "kernel"):
        if opts.get(key):
            raise ValueError(f"{key} is an io_uring option; aio={aio} has no such thing")
    if aio == "native":
        from .engine_aio import AioEngine

        return AioEngine(fd, queue_depth, faults=faults, max_batch=max_batch)
    if aio == "threads":
        from .engine_threads import ThreadsEngine

        return ThreadsEngine(fd, queue_depth, faults=faults, max_batch=max_batch)
    raise ValueError(f"aio must be one of {ENGINES} or 'auto', got {aio!r}")


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
                 kernel: Any = None, max_batch: Optional[int] = None) -> None:
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
        if queue_depth.__class__ is bool or not isinstance(queue_depth, int):
            raise TypeError(f"queue_depth must be an int, not {type(queue_depth).__name__}")
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
            if self.direct:
                self.request_alignment, self.memory_alignment = probe_alignment(self.fd)
            else:
                self.request_alignment = self.memory_alignment = 1
            opts = dict(fixed_files=fixed_files, sqpoll=sqpoll, iopoll=iopoll, kernel=kernel,
                        max_batch=max_batch)
            self.auto_reason = ""
            if aio == "auto":
                self.engine = self._auto(queue_depth, faults, opts)
            else:
                self.engine = _make_engine(aio, self.fd, queue_depth, faults,
                                           {k: v for k, v in opts.items() if v})
            if iopoll:
                if not self.direct:
                    raise ValueError("iopoll needs O_DIRECT: use cache=none or directsync")
                self.engine.check_iopoll()  # type: ignore[attr-defined]
        except BaseException:
            os.close(self.fd)
            raise
        self.fixed_buffers = fixed_buffers
        self.engine.granule = self.request_alignment
        self.aio = self.engine.name
        self._outstanding = 0  # outer requests not finished
        self._rmw_active = 0
        self._deferred: Deque[Tuple[BlockRequest, bool]] = deque()
        self._raised: List[BaseException] = []  # callbacks of requests finished at submit
        self.bounced = 0
        self.rmw = 0

    def _auto(self, queue_depth: int, faults: Optional[IoFaults], opts: dict) -> Engine:
        """``aio=auto``: io_uring if it can be set up, else Linux AIO for
        O_DIRECT, else threads; ``auto_reason`` says why."""
        reasons = []
        try:
            engine = _make_engine("io_uring", self.fd, queue_depth, faults,
                                  {k: v for k, v in opts.items() if v})
            self.auto_reason = "io_uring: available"
            return engine
        except OSError as exc:
            reasons.append(f"io_uring unavailable ({exc})")
        if self.direct:
            try:
                engine = _make_engine("native", self.fd, queue_depth, faults,
                                      {"max_batch": opts.get("max_batch")})
                self.auto_reason = "; ".join(reasons + ["native: Linux AIO with O_DIRECT"])
                return engine
            except OSError as exc:
                reasons.append(f"native unavailable ({exc})")
        else:
            reasons.append("native skipped (without O_DIRECT Linux AIO blocks in io_submit)")
        self.auto_reason = "; ".join(reasons + ["threads"])
        return _make_engine("threads", self.fd, queue_depth, faults,
                            {"max_batch": opts.get("max_batch")})

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
        if not self.fixed_buffers or self.aio != "io_uring":
            raise ValueError("register_buffers needs aio=io_uring and fixed_buffers=True")
        self.engine.register_buffers(buffers)  # type: ignore[attr-defined]

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
        v = as_view(buf, True)
        return self._submit(BlockRequest(Op.READ, offset, v.nbytes, [v], callback))

    def submit_write(self, data: Any, offset: int, callback: Optional[Callback] = None) -> BlockRequest:
        if self.read_only:
            raise PermissionError(errno.EBADF, f"{self.path} is open read-only")
        v = as_view(data, False)
        return self._submit(BlockRequest(Op.WRITE, offset, v.nbytes, [v], callback))

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

    def _check_open(self) -> None:
        if self._owner.ident != _get_ident():
            self._owner.claim()
        if self.engine.closed or self.fd < 0:
            raise ValueError(f"I/O on a closed image {self.path!r}")

    def _submit(self, req: BlockRequest) -> BlockRequest:
        self._check_open()
        if req.offset.__class__ is not int:
            req.offset = _as_int(req.offset, "offset")
        if req.length.__class__ is not int:
            req.length = _as_int(req.length, "length")
        if not 0 <= req.offset <= _MAX_OFFSET - req.length or req.length < 0:
            raise ValueError(f"bad offset or length: {req.offset}, {req.length} (both must be "
                             f">= 0 and their sum at most 2**63-1)")
        callbacks = req.callbacks
        if callbacks and not callable(callbacks[0]):
            raise TypeError(f"callback must be callable, not {type(callbacks[0]).__name__}")
        if not req.length and req.op is not Op.FLUSH:
            return self._finished_at_submit(req)  # nothing to do (fallocate would say EINVAL)
        unaligned = self.direct and req.op in (Op.READ, Op.WRITE) and not self._aligned(req)
        req.image = self
        self._outstanding += 1
        if unaligned:
            self._submit_unaligned(req)
        else:
            self._enqueue_or_defer(req, False)
        return req

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
        if self._deferred:
            self._pump()

    # -- O_DIRECT alignment ------------------------------------------------------------

    def _aligned(self, req: BlockRequest) -> bool:
        ra, ma = self.request_alignment, self.memory_alignment
        if req.offset % ra or req.length % ra:
            return False
        for v in req.views:
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
        """Handle completions that are ready, without blocking."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        if self._raised:
            self._raise_early()
        return self.engine.poll(wait=False)

    def wait(self, req: Optional[BlockRequest] = None) -> None:
        """Block until *req* (default: everything submitted) has finished.
        A callback's exception is raised once its batch is delivered (see
        above); the requests still outstanding then are not waited for."""
        if self._owner.ident != _get_ident():
            self._owner.claim()
        if self._raised:
            self._raise_early()
        engine = self.engine
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

    @contextlib.contextmanager
    def plugged(self) -> Iterator["Image"]:
        """Queue everything submitted in the block; submit it as one batch
        at the end (QEMU's ``blk_io_plug``/``blk_io_unplug``)."""
        self.plug()
        try:
            yield self
        finally:
            self.unplug()

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
        ``uring.block`` logger).  A second ``close()`` does nothing."""
        if self.fd < 0:
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


def open_image(path: "str | os.PathLike[str]", **options: Any) -> Image:
    """Open *path* as a block device with QEMU's options:

    aio:           ``io_uring``, ``native`` (Linux AIO), ``threads``, or
                   ``auto`` (the best that works; ``image.auto_reason`` says why).
    cache:         ``writeback`` (default), ``none``, ``writethrough``,
                   ``directsync``, ``unsafe`` (see the module docstring).
    queue_depth:   requests in the kernel's hands at once (default 64);
                   more wait in a software queue.
    max_batch:     QEMU's aio-max-batch: submit while plugged once this many
                   are queued (default: half the queue depth).
    read_only:     open O_RDONLY.
    fixed_files, fixed_buffers, sqpoll, iopoll:  io_uring features.
    faults:        an ``IoFaults`` plan (tests).
    kernel:        io_uring's syscall seam, e.g. a ``FaultInjector`` (tests).
    """
    return Image(path, **options)


