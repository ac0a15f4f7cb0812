"""A ring tied to an asyncio event loop: the AioContext of the talk.

``LoopRing`` owns (or shares) one ``uring.Ring`` and does three things
for the loop's thread:

* **Batches submissions.**  An op coroutine fills its SQE and parks on a
  future; the first SQE of a loop iteration schedules one ``_flush`` with
  ``call_soon``, so every SQE queued during one tick goes to the kernel in
  one ``io_uring_enter``.  The files' reads and writes (``start_rw``) are
  *staged*: each packs its SQE head into a buffer of the LoopRing's, and
  the flush files all of the tick's with their records in one
  ``Ring.prep_copies`` (``file_staged``), a fraction of a ``prep_rw`` each;
  so are the transports' sends (``start_watched``).
  Requests the kernel finishes inline during that enter (a page-cache hit)
  are reaped right after it, without waiting for the loop's poll.
* **Notices completions through the loop's own poll.**  On a stock loop
  the ring fd is registered with ``loop.add_reader``: the kernel's
  ``io_uring_poll`` reports it readable while the CQ holds entries (QEMU
  watches the same fd in its AioContext).  On ``UringEventLoop`` there is
  no second poll: the loop's selector waits in ``io_uring_enter`` and hands
  the ring's CQEs here.
* **Keeps the one-completion-per-request promise through cancellation.**
  A cancelled task does not see ``CancelledError`` until the kernel has
  posted the request's CQE: an ``IORING_OP_ASYNC_CANCEL`` is queued, and the
  coroutine waits (ignoring further cancellations) for the CQE, so the
  kernel has let go of the buffer when the task unwinds.

No table of its own: the ring's record of each request (``uring.request.
Request``, filed by the ``prep_*`` call) is the one place a request lives
until its final CQE, and what waits for it is the record's *owner*
(``Ring.set_owner``): the future an op coroutine awaits (``track``), or the
callback of a transport's receive or send or of a multishot accept
(``watch``).  The CQEs come back from ``Ring.reap_records`` paired with
their records, so ``dispatch`` finds the owner without a lookup of its own.

Back-pressure: at most ``capacity`` awaited requests (the CQ size) are in
flight; an op past that waits for a completion to free a slot instead of
failing.  Two counters (awaited requests, watched requests) say how many
are in flight without scanning anything.  Transports and multishot accepts
(callbacks, ``watch``) pace themselves and are not counted against
``capacity``.  An SQ that fills within one tick is submitted early
(``sq_full="submit"``).

A request the kernel had already finished when its task was cancelled
keeps its result: received bytes and accepted connections are handed to
the next call on the same socket (``push_back``), an opened fd is closed.

Everything here runs on the loop's thread; the ring is not shared with
other threads.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
import os
import struct
import time
import warnings
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from .. import abi
from ..bufring import BufferRing
from ..errors import RingClosedError, UringUnavailableError, kernel_error
from ..ops import Ring
from ..request import Completion, Request

__all__ = ["LoopRing", "get_ring"]

_F_MORE = int(abi.IORING_CQE_F_MORE)
#: The user_data of staged requests (``start_rw``): numbers the ring's own
#: counter (from 1) never reaches, so the two never clash.
_STAGED_BASE = 1 << 62
#: The first 40 bytes of an ``io_uring_sqe`` (opcode, flags, ioprio, fd, off,
#: addr, len, op_flags, user_data): a staged request's; the rest stays zero.
_SQE_HEAD = abi.SQE_HEAD_STRUCT
_SQE_SIZE = 64
_OP_NOP = int(abi.IORING_OP_NOP)
_repeat = itertools.repeat
_CancelledError = asyncio.CancelledError
_InvalidStateError = asyncio.InvalidStateError

#: The buffer group of the transports' multishot receives, and its size.
RECV_GROUP = 0x7A5
RECV_BUFFERS = 256
RECV_BUFFER_SIZE = 64 * 1024

#: Raw CQE as the ring reaps it: (user_data, res, flags).
RawCqe = Tuple[int, ...]
#: What ``Ring.reap_records`` returns per CQE: the raw CQE and its record.
Reaped = Tuple[RawCqe, Optional[Request]]


class LoopRing:
    """io_uring attached to one event loop.

    loop:     the loop (default: the running one).
    entries:  SQ size of the ring made here; the CQ is twice that.

    Threads: asyncio's rule, enforced by the ring: use it only from the
    thread running its loop (the ring belongs to the first thread that
    uses it; another thread's call raises ``uring.RingThreadError``).
    From other threads, hand work over with
    ``loop.call_soon_threadsafe``/``asyncio.run_coroutine_threadsafe``.
    ring:     use this ring instead of making one (``UringEventLoop`` passes
              its selector's ring); with *watch* False nobody adds a reader
              for it: the owner calls ``dispatch`` with the CQEs it reaps
              (``Ring.reap_records``: each with its record).

    Requests prepared on the ring by others carry no owner of ours
    (``None``, or what they attached): a record whose owner is neither a
    future of this loop nor a callback given to ``watch`` must not be
    filed on a ring a ``LoopRing`` dispatches.
    """

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None, entries: int = 256, *,
                 ring: Optional[Ring] = None, watch: bool = True,
                 stage: Optional[bool] = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._owns_ring = ring is None
        self.ring: Ring = ring if ring is not None else Ring(entries, sq_full="submit")
        # No table here: each request's record in the ring has as owner the
        # Future an op coroutine awaits (resolved with the raw CQE; the
        # requests back-pressure counts) or a callable taking each raw CQE
        # (transports' receives and sends, multishot accepts; their owners
        # pace themselves).  A CQE whose record has no owner is dropped
        # (our own cancels).  Two counters say how many of each are in flight.
        self._awaited = 0
        self._watched = 0
        self._set_owner = self.ring.set_owner
        self._prep_rw = self.ring.prep_rw
        # Reads and writes of the tick (``start_rw``): their SQEs packed into
        # _stage_buf, slot i for _staged[i] = (user_data, opcode, target,
        # keep, future), filed into the SQ with their records in one
        # ``prep_copies`` by the flush.  Only where this LoopRing flushes
        # (*watch*), or its owner calls ``file_staged`` before each submit
        # (*stage*), and on a ring of 64-byte SQEs.
        self._staged: List[Tuple[Any, ...]] = []
        self._staged_ud = _STAGED_BASE
        self._stage = bool(watch if stage is None else stage) \
            and not self.ring.setup_flags & abi.IORING_SETUP_SQE128
        self._stage_slots = self.ring.cq_entries  # = capacity: what may be awaited at once
        self._stage_buf = bytearray(_SQE_SIZE * self._stage_slots if self._stage else 0)
        self._pack_head = _SQE_HEAD.pack_into
        self._held = self.ring.held
        self.capacity = self.ring.cq_entries
        self._room_waiters: Deque[asyncio.Future] = collections.deque()
        self._flush_handle: Optional[asyncio.Handle] = None
        self._watching = False
        self._closed = False
        self._recv_pool: Optional[BufferRing] = None
        # Buffers of recv_buffers() the transports emptied during this batch
        # of CQEs; dispatch gives them back with one tail store.
        self._recycle: List[int] = []
        #: ``give_back`` as the bound ``append`` of that list: the per-receive
        #: path of a transport, without a Python frame.
        self.give_back_later: Callable[[int], None] = self._recycle.append
        # The CQE of a request whose future was cancelled before it came,
        # under that future (its owner), until after_cancel collects it.
        self._late: Dict[Any, RawCqe] = {}
        # fd -> (its file's identity, what cancelled requests delivered)
        self._pushed: Dict[int, Tuple[Tuple[int, int], Deque[Any]]] = {}
        self._create_future = self._loop.create_future
        # Every future of this loop is of one class: dispatch tells an
        # awaited request's owner from a callback by it.
        self._future_class = type(self._create_future())
        if watch:
            self._loop.add_reader(self.ring.fd, self._on_readable)
            self._watching = True

    # -- the loop's side -----------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        """Requests of ours whose final CQE has not arrived yet (awaited
        and watched)."""
        return self._awaited + self._watched

    @property
    def awaited(self) -> int:
        """Awaited requests in flight (``track``ed, result not dispatched
        yet): what ``capacity`` bounds.  A counter, read without a scan:
        ``if lr.awaited >= lr.capacity: await lr.room()``."""
        return self._awaited

    def _kick(self) -> None:
        """Make sure the SQEs prepared in this tick are submitted: one flush
        per iteration, scheduled by the first of them."""
        if self._flush_handle is None and self._watching:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Submit what this tick prepared, then reap what completed inline."""
        self._flush_handle = None
        ring = self.ring
        if ring.closed:
            return
        if self._staged:
            self.file_staged()
        try:
            ring.submit()
        except OSError as exc:
            # EAGAIN (no memory for requests right now) or EBUSY (the CQ
            # overflow list is backed up): reap first, then try again.
            if exc.errno not in (errno.EAGAIN, errno.EBUSY):
                raise
            self._flush_handle = self._loop.call_soon(self._flush)
        done = ring.reap_records()
        if done:
            self.dispatch(done)

    def _on_readable(self) -> None:
        """The ring fd polled readable: the CQ holds entries."""
        done = self.ring.reap_records()
        if done:
            self.dispatch(done)

    def dispatch(self, done: List[Reaped]) -> None:
        """Hand each CQE (paired with its record, as ``Ring.reap_records``
        returns them) to the record's owner: resolve the future (the
        coroutine resumes on the loop's next step) or call the callback.
        A request flagged ``IORING_CQE_F_MORE`` keeps its record and its
        callback; a CQE whose record has no owner is dropped."""
        future_class = self._future_class
        # The two counters move once per batch (callbacks make no awaited
        # requests, and a coroutine cannot run before this returns).
        finished = ended = 0
        try:
            for cqe, record in done:
                if record is None:
                    continue
                owner = record.owner
                if owner.__class__ is future_class:
                    finished += 1
                    if cqe[2] & _F_MORE:  # the future has its CQE: drop the rest
                        record.owner = None
                    try:
                        owner.set_result(cqe)
                    except _InvalidStateError:  # its task was cancelled: after_cancel collects this
                        self._late[owner] = cqe
                    continue
                if owner is None:
                    continue
                if not cqe[2] & _F_MORE:
                    ended += 1
                try:
                    owner(cqe)
                except Exception as exc:  # one failing callback must not cost the batch its CQEs
                    self._loop.call_exception_handler({
                        "message": f"uring.asyncio: a completion callback failed ({owner!r})",
                        "exception": exc})
        finally:
            self._awaited -= finished
            self._watched -= ended
        if self._recycle:
            # One tail store for every buffer the transports emptied.
            self._recv_pool.recycle(self._recycle)  # type: ignore[union-attr]
            self._recycle.clear()
        if self._room_waiters:
            self._wake_room()

    def recv_buffers(self) -> BufferRing:
        """The provided-buffer ring the loop's transports receive into
        (``IORING_REGISTER_PBUF_RING``, group ``RECV_GROUP``), made on first
        use: ``RECV_BUFFERS`` buffers of ``RECV_BUFFER_SIZE`` bytes, shared
        by every connection, each back in the ring as soon as its bytes
        are copied out."""
        pool = self._recv_pool
        if pool is None:
            pool = self._recv_pool = self.ring.register_buf_ring(
                RECV_GROUP, RECV_BUFFERS, RECV_BUFFER_SIZE)
        return pool

    def give_back(self, buffer_id: int) -> None:
        """A transport copied the bytes out of receive buffer *buffer_id*
        (of ``recv_buffers``): it goes back to the kernel with the tail
        store that ends this batch of CQEs."""
        self._recycle.append(buffer_id)

    # -- requests ----------------------------------------------------------------------

    def track(self, user_data: int) -> "asyncio.Future[RawCqe]":
        """A future for the CQE of the request just prepared as *user_data*
        (made the owner of its record); the SQE goes to the kernel with
        this tick's flush.  Counted against ``capacity`` until its CQE."""
        fut = self._create_future()
        self._set_owner(user_data, fut)
        self._awaited += 1
        if self._flush_handle is None and self._watching:  # _kick, inlined: every awaited op's path
            self._flush_handle = self._loop.call_soon(self._flush)
        return fut

    def start_rw(self, opcode: int, fd: int, address: int, length: int, offset: int,
                 keep: Any) -> Tuple[int, "asyncio.Future[RawCqe]"]:
        """Start a read or write (*length* bytes at *address*, held alive
        by *keep*, a live pinned buffer or a ``bytes``; *offset* -1 for the
        file position), its future the record's owner, counted as ``track``
        counts: ``(user_data, future)``.  The per-read path of the files.

        Staged: the request waits in a list until the tick's flush, which
        fills the SQEs of all of them at once (``file_staged``: one
        ``Ring.prep_copies``, a fraction of a ``prep_rw`` per request), so
        its SQE reaches the kernel with the same ``io_uring_enter`` as if
        it had been prepared now.  (Unstaged, where this LoopRing cannot
        stage: ``Ring.prep_rw`` at once.)  The caller checked ``capacity``
        first."""
        if self._stage:
            staged = self._staged
            i = len(staged)
            if i == self._stage_slots:  # a caller that did not wait for room
                self.file_staged()
                staged = self._staged
                i = 0
            ud = self._staged_ud
            try:
                self._pack_head(self._stage_buf, i * _SQE_SIZE, opcode, 0, 0, fd, offset, address,
                                length, 0, ud)
            except struct.error as exc:  # a field out of range: refused here, as prep_rw does
                raise ValueError(f"{Request(ud, opcode).name}: a field of the request is out "
                                 f"of range ({exc})") from None
            self._staged_ud = ud + 1
            fut = self._create_future()
            staged.append((ud, opcode, fd, keep, fut))
        else:
            fut = self._create_future()
            ud = self._prep_rw(opcode, fd, address, length, offset, None, 0, 0, keep, owner=fut)
        self._awaited += 1
        if self._flush_handle is None and self._watching:  # _kick, inlined
            self._flush_handle = self._loop.call_soon(self._flush)
        return ud, fut

    def file_staged(self) -> None:
        """File the staged requests (``start_rw``) into the SQ: their SQEs,
        packed when they were started, and their records, made here in one
        pass (``Ring.prep_copies``, at most one SQ's worth a call; a full
        SQ is submitted to make room, ``sq_full="submit"``).  The flush
        calls this before it submits; a ring owner that stages
        (``stage=True``) calls it before each ``io_uring_enter``.  Requests
        the ring refuses (closed, used from another thread) fail: their
        futures get the error."""
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        n = len(staged)
        uds, opcodes, targets, keeps, owners = zip(*staged)
        records = list(map(Request, uds, opcodes, targets, keeps, _repeat(None), owners))
        ring, view = self.ring, memoryview(self._stage_buf)
        step = ring.sq_entries
        for start in range(0, n, step):
            end = min(n, start + step)
            try:
                ring.prep_copies(view[start * _SQE_SIZE:end * _SQE_SIZE], uds[start:end],
                                 records[start:end])
            except BaseException as exc:
                self._fail_staged(staged[start:], exc)
                if not isinstance(exc, Exception):
                    raise
                return

    def _fail_staged(self, entries: Sequence[Tuple[Any, ...]], exc: BaseException) -> None:
        """Staged requests that never reached the SQ stop counting: a
        future gets *exc*; a callback gets, on the next loop step, the CQE
        of a request that never ran (``-ECANCELED``); one taken back (no
        owner) already stopped."""
        for ud, _opcode, _target, _keep, owner in entries:
            if owner is None:
                continue
            if owner.__class__ is self._future_class:
                self._awaited -= 1
                if not owner.done():
                    owner.set_exception(exc)
            else:
                self._watched -= 1
                self._loop.call_soon(owner, (ud, -errno.ECANCELED, 0))
        if self._room_waiters:
            self._wake_room()

    def _unstage(self, user_data: int) -> bool:
        """A staged request's task was cancelled before its SQE went into
        the SQ: it becomes a NOP that owns nothing (its CQE is dropped), so
        the kernel never touches its buffer.  Whether it was staged."""
        if self._take_staged(user_data) is None:
            return False
        self._awaited -= 1
        if self._room_waiters:
            self._wake_room()
        return True

    def _take_staged(self, user_data: int) -> Optional[Tuple[Any, ...]]:
        """Turn the staged request *user_data* into a NOP owning nothing
        (the kernel never touches its memory; its CQE is dropped) and
        return its entry; None if it is not staged."""
        for i, entry in enumerate(self._staged):
            if entry[0] == user_data:
                self._pack_head(self._stage_buf, i * _SQE_SIZE, _OP_NOP, 0, 0, -1, 0, 0, 0, 0,
                                user_data)
                self._staged[i] = (user_data, _OP_NOP, None, None, None)
                return entry
        return None

    def start_watched(self, opcode: int, fd: int, address: int, length: int, op_flags: int,
                      keep: Any, callback: Callable[[RawCqe], None]) -> int:
        """Start a read-shaped request (a plain ``IORING_OP_SEND``: *fd*,
        *address*, *length*, *op_flags*, its memory held by *keep*) with
        *callback* as the record's owner, counted as ``watch`` counts: its
        ``user_data``.  A transport's per-send path, staged as ``start_rw``
        (a ``cancel`` while it is still staged hands *callback*, on the next
        loop step, the ``-ECANCELED`` CQE of a request that never ran).
        The caller checked that the ring supports *opcode*."""
        if self._stage:
            staged = self._staged
            i = len(staged)
            if i == self._stage_slots:  # more than a CQ's worth this tick: file those first
                self.file_staged()
                staged = self._staged
                i = 0
            ud = self._staged_ud
            try:
                self._pack_head(self._stage_buf, i * _SQE_SIZE, opcode, 0, 0, fd, 0, address,
                                length, op_flags, ud)
            except struct.error as exc:  # a field out of range: refused here, as prep_rw does
                raise ValueError(f"{Request(ud, opcode).name}: a field of the request is out "
                                 f"of range ({exc})") from None
            self._staged_ud = ud + 1
            staged.append((ud, opcode, fd, keep, callback))
        else:
            ud = self._prep_rw(opcode, fd, address, length, 0, None, 0, op_flags, keep,
                               owner=callback)
        self._watched += 1
        if self._flush_handle is None and self._watching:  # _kick, inlined
            self._flush_handle = self._loop.call_soon(self._flush)
        return ud

    def watch(self, user_data: int, callback: Callable[[RawCqe], None]) -> None:
        """Call *callback* with every CQE of *user_data* (made the owner of
        its record: a multishot request keeps it until its CQE without
        ``IORING_CQE_F_MORE``)."""
        self._set_owner(user_data, callback)
        self._watched += 1
        if self._flush_handle is None and self._watching:  # _kick, inlined: once per send
            self._flush_handle = self._loop.call_soon(self._flush)

    async def room(self) -> None:
        """Wait until fewer than ``capacity`` requests are in flight.  What
        is staged goes into the SQ first: an op prepared after this (its
        caller's, at once) comes after the reads and writes started before
        it, in the SQ as in the program (a close after a read)."""
        if self._closed:
            raise RingClosedError("the loop's ring is closed")
        if self._staged:
            self.file_staged()
        while self._awaited >= self.capacity:
            w = self._create_future()
            self._room_waiters.append(w)
            await w

    def _wake_room(self) -> None:
        free = self.capacity - self._awaited
        waiters = self._room_waiters
        while waiters and free > 0:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                free -= 1

    async def wait(self, user_data: int, fut: "asyncio.Future[RawCqe]",
                   salvage: Optional[Callable[[RawCqe], None]] = None) -> RawCqe:
        """Await *fut* (from ``track``).  If the task is cancelled meanwhile,
        cancel the request in the kernel, wait for its CQE (``after_cancel``),
        hand a CQE that still carries a result to *salvage*, then raise
        ``CancelledError``."""
        try:
            return await fut
        except _CancelledError:
            late = await self.after_cancel(user_data, fut)
            if late is not None and late[1] >= 0 and salvage is not None:
                salvage(late)
            raise

    async def after_cancel(self, user_data: int, fut: Any) -> Optional[RawCqe]:
        """The task awaiting *fut* was cancelled.  If the request's CQE is
        not in yet, ask the kernel to cancel it and wait for that CQE,
        ignoring further cancellations: until it arrives the kernel may
        still write into the buffer the caller is about to drop.

        Returns the request's CQE: ``-ECANCELED``, or what the request did
        if the kernel finished it before the cancel took (a receive that
        consumed data, an accept that made a connection: the caller's
        ``salvage`` keeps it, see ``push_back``)."""
        late = self._late.pop(fut, None)
        if late is not None:
            return late  # came after the task's cancel, before this ran
        if user_data >= _STAGED_BASE and self._staged and self._unstage(user_data):
            return None  # still staged: the kernel never saw it
        record = self._held(user_data)
        if record is None or record.owner is not fut:
            # The CQE came before the cancel: *fut* holds it.
            return fut.result() if fut.done() and not fut.cancelled() else None
        self.cancel(user_data)
        while True:
            # The record's owner changes; the request stays counted once.
            w = self._create_future()
            record.owner = w
            try:
                return await w  # type: ignore[no-any-return]
            except _CancelledError:
                if record.owner is not w or self._held(user_data) is not record:
                    # Dispatched: *w* holds the CQE, or _late does.
                    if w.done() and not w.cancelled():
                        return w.result()  # type: ignore[no-any-return]
                    return self._late.pop(w, None)

    # -- results of cancelled requests, kept for the next caller ---------------------

    def push_back(self, fd: int, item: Any) -> None:
        """Keep what a cancelled request on *fd* had already taken from the
        kernel (received bytes with their address, an accepted connection):
        the next ``sock_recv*``/``sock_accept`` on *fd* returns it first, so
        a cancellation never loses data the kernel delivered.  Kept with
        the file's identity (``st_dev``, ``st_ino``): an fd number closed and
        reused for another socket does not inherit it."""
        st = os.fstat(fd)
        kept = self._pushed.get(fd)
        if kept is None or kept[0] != (st.st_dev, st.st_ino):
            kept = self._pushed[fd] = ((st.st_dev, st.st_ino), collections.deque())
        kept[1].append(item)

    def holds_back(self, fd: int) -> bool:
        """Whether ``push_back`` keeps something for *fd* (no system call:
        ``take_back`` checks that it is still the same file)."""
        return fd in self._pushed if self._pushed else False

    def take_back(self, fd: int) -> Any:
        """The oldest item ``push_back`` kept for *fd*, or None."""
        kept = self._pushed.get(fd)
        if kept is None:
            return None
        try:
            st = os.fstat(fd)
            same = kept[0] == (st.st_dev, st.st_ino)
        except OSError:
            same = False
        if not same:  # that file is gone; this fd is another one now
            del self._pushed[fd]
            return None
        item = kept[1].popleft()
        if not kept[1]:
            del self._pushed[fd]
        return item

    def put_first(self, fd: int, item: Any) -> None:
        """Return the unconsumed rest of an item (just taken with
        ``take_back``) to the front of *fd*'s queue."""
        self.push_back(fd, item)
        self._pushed[fd][1].rotate(1)

    def cancel(self, user_data: int) -> None:
        """Queue ``IORING_OP_ASYNC_CANCEL`` for *user_data* (its own CQE is
        dropped; the target posts its CQE as usual)."""
        if self.ring.closed:
            return
        if user_data >= _STAGED_BASE and self._staged:
            entry = self._take_staged(user_data)
            if entry is not None:
                # Never reached the kernel: its owner gets, on the next loop
                # step, the CQE of a request cancelled before it ran.
                ud, opcode, target, keep, owner = entry
                cancelled: List[Reaped] = [((ud, -errno.ECANCELED, 0),
                                            Request(ud, opcode, target, keep, None, owner))]
                self._loop.call_soon(self.dispatch, cancelled)
                return
        self.ring.prep_cancel(user_data)  # no waiter: dispatch drops its CQE
        self._kick()

    async def run(self, user_data: int) -> Any:
        """Await the request just prepared as *user_data* and return its
        decoded result (``Completion.result()``: the byte count, the new fd,
        the op's value), or raise its ``OSError`` with the op named."""
        record = self.ring.held(user_data)
        cqe = await self.wait(user_data, self.track(user_data))
        return Completion(cqe, record).result()

    async def run_res(self, user_data: int, what: str, target: Any = None,
                      salvage: Optional[Callable[[RawCqe], None]] = None) -> int:
        """Like ``run`` for ops whose result is ``res`` itself: no record
        lookup, the error named from *what* and *target*; *salvage* as for
        ``wait``."""
        res: int = (await self.wait(user_data, self.track(user_data), salvage))[1]
        if res < 0:
            raise kernel_error(-res, what, target)
        return res

    # -- teardown ----------------------------------------------------------------------

    def close(self, timeout: float = 2.0) -> None:
        """Cancel and drain every request in flight, release what they hold,
        and warn (``ResourceWarning``) about requests whose awaiting task
        never saw them complete, as asyncio warns about pending tasks."""
        if self._closed:
            return
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._watching:
            self._watching = False
            try:
                self._loop.remove_reader(self.ring.fd)
            except (RuntimeError, ValueError, OSError):  # the loop is already closed
                pass
        ring = self.ring
        orphans = [repr(r) for r, w in self._owned() if w.__class__ is not self._future_class
                   or not w.done()]
        staged, self._staged = self._staged, []
        never_ran: List[Reaped] = []
        for ud, opcode, target, keep, owner in staged:  # never reached the kernel
            if owner is None:
                continue
            if owner.__class__ is not self._future_class:  # a transport's send
                orphans.append(repr(Request(ud, opcode, target)))
                # As the drain below hands the requests in flight theirs.
                never_ran.append(((ud, -errno.ECANCELED, 0),
                                  Request(ud, opcode, target, keep, None, owner)))
                continue
            self._awaited -= 1
            if not owner.done():
                orphans.append(repr(Request(ud, opcode, target)))
                owner.set_exception(
                    RingClosedError("the loop's ring was closed before this request completed"))
        if never_ran:
            self.dispatch(never_ran)
        if not ring.closed and (self._awaited or self._watched):
            ring.submit()
            ring.prep_cancel(any=True, all=True)
            self._drain(timeout)
        for record, w in self._owned():
            record.owner = None
            if w.__class__ is self._future_class and not w.done():
                w.set_exception(RingClosedError("the loop's ring was closed before this request completed"))
        self._awaited = self._watched = 0
        for w in self._room_waiters:
            if not w.done():
                w.set_exception(RingClosedError("the loop's ring is closed"))
        self._room_waiters.clear()
        if self._owns_ring:
            ring.close()
        if orphans:
            warnings.warn(
                f"uring.asyncio: {len(orphans)} request(s) were still in flight when the loop "
                f"closed and were cancelled: {', '.join(orphans[:5])}"
                + (" ..." if len(orphans) > 5 else ""),
                ResourceWarning, stacklevel=2)

    def _owned(self) -> List[Tuple[Request, Any]]:
        """The records in flight whose owner is ours (a future or a
        callback), with it: a scan, for teardown only."""
        return [(r, r.owner) for r in self.ring.requests_in_flight()
                if r.owner is not None and (r.owner.__class__ is self._future_class
                                            or callable(r.owner))]

    def _drain(self, timeout: float) -> None:
        ring = self.ring
        deadline = time.monotonic() + timeout
        while self._awaited or self._watched:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.dispatch(ring.reap_records(wait=1, timeout=min(left, 0.5)))


_RINGS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopRing]" = weakref.WeakKeyDictionary()


def get_ring(loop: Optional[asyncio.AbstractEventLoop] = None) -> LoopRing:
    """The ring of *loop* (default: the running loop), made and attached on
    first use.  On a stock loop its ``close()`` is wrapped so that closing
    the loop closes the ring first (cancelling and draining what is in
    flight); ``UringEventLoop`` has one of its own."""
    if loop is None:
        loop = asyncio.get_running_loop()
    lr = _RINGS.get(loop)
    if lr is None or lr.closed:
        own = getattr(loop, "uring", None)
        if isinstance(own, LoopRing):
            return own
        if loop.is_closed():
            raise RuntimeError("the event loop is closed")
        try:
            lr = LoopRing(loop)
        except UringUnavailableError as exc:
            from .fallback import refused_error
            refused_error(exc)
            raise
        _RINGS[loop] = lr
        _close_with_loop(loop, lr)
    return lr


def _close_with_loop(loop: asyncio.AbstractEventLoop, lr: LoopRing) -> None:
    """Have ``loop.close()`` close *lr* first (an attribute on the loop
    instance; the loop's class is untouched)."""
    close = loop.close

    def close_ring_then_loop() -> None:
        lr.close()
        close()

    loop.close = close_ring_then_loop  # type: ignore[method-assign]
