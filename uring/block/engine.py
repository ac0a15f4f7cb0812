"""What every engine shares: QEMU's queueing rules around one submit path.

An engine turns block requests into kernel work (SQEs, iocbs, thread-pool
jobs) and completions back into finished requests.  The rules around that
are the same for all three, as in QEMU's ``block/io_uring.c`` and
``block/linux-aio.c``, so they live here once:

- **plug/unplug**: while plugged, requests only queue, up to ``max_batch``
  (QEMU's ``aio-max-batch``); the unplug that ends the outermost plug
  submits the rest with one submit.
- **queue depth**: at most ``queue_depth`` requests are in the kernel's
  hands; the rest wait in a software queue (``pending``) and go as
  completions free slots.
- **submit batches**: one submit call hands over at most
  ``submit_batch`` requests (fio's ``iodepth_batch_submit``; 0: all that
  are staged); the image sets a small one under O_DIRECT.
- **blocked**: if the kernel takes nothing (ring full, ``EAGAIN`` from the
  submit call), the queue is marked blocked and resubmitted from the
  completion path (``poll``), never spun on.
- **short transfers**: a read or write that moved fewer bytes than asked is
  resubmitted for the remainder, the offset advanced by what was done,
  accumulated across retries.  A read that hits end of file, or the end of
  a block device (0 bytes), is zero-filled to its length, as QEMU does for
  raw images; a write that makes no progress fails with ``ENOSPC`` (as one
  at or past the end of a block device does: a device never grows).
- **retries**: a request completing with ``-EAGAIN`` or ``-EINTR`` is
  resubmitted (a bounded number of times).
- **failures stay with their request**: a request the engine cannot stage
  (or a worker cannot run) fails alone, with its op and an errno; a
  completion callback that raises does not stop the rest of its batch
  (``poll`` raises the first exception after delivering them all).

Engines implement four hooks: ``_issue`` (stage one request; False when
the kernel side has no room), ``_commit`` (hand the staged batch over),
``_reap`` (collect completions, calling ``_completed``) and ``_close``.

**One interface.**  What an engine can do beyond reads, writes, flush,
discard and write-zeroes is declared in ``capabilities`` (a frozenset of
``Capability`` names: registered buffers, registered files, SQPOLL,
IOPOLL); the image asks ``supports()`` and calls the matching method of
this class (``register_buffers``, ``check_iopoll``), which an engine
without the capability refuses by name.  Which engine a name opens, and
which open options it accepts, is one table: ``ENGINE_TABLE``.
"""

from __future__ import annotations

import enum
import errno
import importlib
import logging
import os
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, FrozenSet, List, NoReturn, Optional, Sequence

from ..errors import RingForkedError
from ..syscalls import on_fork_in_child
from .faults import IoFaults
from .request import BlockRequest, Op, raise_deferred

__all__ = ["Capability", "ENGINE_TABLE", "Engine", "EngineEntry", "MAX_RETRIES", "error_number",
           "make_engine"]

_log = logging.getLogger("uring.block")

#: Resubmissions of one request after -EAGAIN/-EINTR before giving up.
MAX_RETRIES = 1000


def error_number(exc: BaseException) -> int:
    """The errno a request fails with when running it raised *exc*: its
    own for an ``OSError``, ``EINVAL`` for a value the engine could not use
    (a wrong type, a buffer it cannot pin), else ``EIO``."""
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    if isinstance(exc, (TypeError, ValueError, BufferError, OverflowError)):
        return errno.EINVAL
    return errno.EIO


def _check_max_batch(max_batch: Any) -> None:
    """``max_batch`` (QEMU's aio-max-batch) as ``open_image`` and every
    engine take it: None (the default: half the queue depth) or an int
    >= 1; a bool, float or str is a ``TypeError``, 0 or less a ``ValueError``."""
    if max_batch is None:
        return
    if max_batch.__class__ is not int:
        raise TypeError(f"max_batch must be an int or None, not {type(max_batch).__name__}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1 (None: half the queue depth), got {max_batch}")


class Capability(str, enum.Enum):
    """What an engine may declare it can do (``Engine.capabilities``)."""

    #: ``register_buffers``: READ_FIXED/WRITE_FIXED on registered memory
    FIXED_BUFFERS = "fixed_buffers"
    #: the file registered, requests by index (``IOSQE_FIXED_FILE``)
    FIXED_FILES = "fixed_files"
    #: a kernel thread polls the submission queue (``IORING_SETUP_SQPOLL``)
    SQPOLL = "sqpoll"
    #: completions polled from the device (``IORING_SETUP_IOPOLL``)
    IOPOLL = "iopoll"
    #: fixed-slot queues (``Image.arena``) with their SQEs formatted once
    #: and their completions taken as the CQ's words (``open_arena``)
    ARENA = "arena"


class Engine:
    name = "?"
    #: what this engine can do beyond the five block operations
    capabilities: FrozenSet[Capability] = frozenset()

    def __init__(self, fd: int, queue_depth: int, faults: Optional[IoFaults] = None,
                 max_batch: Optional[int] = None) -> None:
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {queue_depth}")
        _check_max_batch(max_batch)
        self.fd = fd
        self.queue_depth = queue_depth
        # QEMU's aio-max-batch: even while plugged, submit once this many
        # wait, so the device starts on the first ones while the rest are
        # still being prepared (a whole queue in lockstep leaves it idle).
        # None: the default, half the queue depth.
        self.max_batch = max_batch if max_batch is not None else max(1, queue_depth // 2)
        # fio's iodepth_batch_submit: the most requests one submit call
        # hands the kernel (the image sets it; 0: all staged at once).  A
        # device fed a few at a time keeps working while the rest are
        # handed over; a whole queue in one call comes back as one burst,
        # and the device then idles while it is turned around.
        self.submit_batch = 0
        self.faults = faults
        self.pending: Deque[BlockRequest] = deque()
        self.in_flight = 0
        self.plugged = 0
        self.blocked = False
        self.closed = False
        # O_DIRECT's request alignment (the image sets it): a short read
        # that ends off it stopped at end of file
        self.granule = 1
        # set by the image: a discard the device refuses is zeroed instead
        self.block_device = False
        # completions made here, not by the kernel (injected errno faults,
        # requests the engine could not stage): (request, -errno, cause)
        self._synthetic: Deque["tuple[BlockRequest, int, Optional[BaseException]]"] = deque()
        # completions taken from the kernel side (the CQ, the AIO ring, the
        # workers) not yet delivered: (request, res, ...), counted in
        # flight; the next poll delivers them first (see _keep_undelivered)
        self._taken: Deque[Sequence[Any]] = deque()
        # what completion callbacks raised during the current poll
        self._raised: List[BaseException] = []
        # open_arena's queues: tag -> (queue, sink)
        self._arenas: Dict[int, "tuple[Any, Callable[[Any, Any], None]]"] = {}
        # counters, for tests and the benchmark
        self.submit_calls = 0
        self.resubmitted = 0
        # a fork child's copy of an engine is closed: its kernel side is the parent's
        self.forked = False
        self._opened_by = os.getpid()
        on_fork_in_child(self, "_in_fork_child")

    # -- what it can do --------------------------------------------------------------

    def supports(self, capability: "Capability | str") -> bool:
        return Capability(capability) in self.capabilities

    def register_buffers(self, buffers: Sequence[Any]) -> None:
        """Register *buffers* with the kernel (``Capability.FIXED_BUFFERS``)."""
        raise ValueError(f"aio={self.name} has no registered buffers (only io_uring does)")

    def check_iopoll(self) -> None:
        """Check at open that polled completions work (``Capability.IOPOLL``)."""
        raise ValueError(f"aio={self.name} has no iopoll (only io_uring does)")

    def open_arena(self, slots: int, slot_size: int, write: bool,
                   sink: Callable[[Any, Any], None], registered: bool = False) -> Any:
        """A fixed-slot queue on this engine (``Capability.ARENA``); its
        completions go to ``sink(slots, results)`` as arrays; *registered*:
        its arena is the registered-buffer table."""
        raise ValueError(f"aio={self.name} has no arena queues (io_uring and native do)")

    def arena_submit(self, queue: Any, slots: Sequence[int], offsets: Sequence[int]) -> None:
        """Submit *slots* of an ``open_arena`` queue at *offsets*."""
        raise ValueError(f"aio={self.name} has no arena queues (io_uring and native do)")

    def _in_fork_child(self) -> None:
        """In a fork child: the engine's kernel side (the ring, the AIO
        context, the worker threads, which the child does not even have)
        is the parent's, and so are the requests in flight: their
        completions go to the parent.  The child's copy is closed as it
        stands, nothing waited for, submitted or released; any use raises
        ``RingForkedError`` (its ring and AIO context do the same)."""
        self.forked = True
        self.closed = True
        self.pending.clear()
        self._synthetic.clear()
        self._taken.clear()
        self.in_flight = 0

    def refuse_closed(self) -> NoReturn:
        """The error for using a closed engine (a forked child's: see
        ``_in_fork_child``)."""
        if self.forked:
            raise RingForkedError(
                f"aio={self.name}: this image was opened by process {self._opened_by} and cannot be "
                f"used in the forked child {os.getpid()}: open it again in the child")
        raise ValueError(f"{self.name} engine is closed")

    def _deliver(self, sink: Callable[[Any, Any], None], taken: "tuple[Any, Any]") -> None:
        """An arena's completions to its sink; what the sink raises is
        raised by ``poll``, after the rest (as a callback's is)."""
        try:
            sink(*taken)
        except BaseException as exc:  # noqa: BLE001 - raised by poll(), after the rest
            self._raised.append(exc)

    def _to_sole_arena(self, words: Any, n: int) -> bool:
        """With one arena queue open, whether the *n* completions in
        *words* (as the kernel's ring holds them) are all its own, in which
        case they go to its sink in one call: a loop that only reads
        through the arena pays one look, not one per completion."""
        arenas = self._arenas
        if len(arenas) == 1:
            for queue, sink in arenas.values():
                if queue.owns(words):
                    self.in_flight -= n
                    self._deliver(sink, queue.take(words))
                    return True
        return False

    def _split_arenas(self, words: Any, stride: int) -> List[int]:
        """Mixed completions (*stride* words each, ``user_data``/``aio_data``
        first): each arena's go to its sink, one call per arena; returns
        where the others start in *words*, for the engine to finish."""
        arenas = self._arenas
        mine: Dict[int, "array[int]"] = {}
        others: List[int] = []
        for i in range(0, len(words), stride):
            tag = words[i] >> 32
            if tag in arenas:
                got = mine.get(tag)
                if got is None:
                    got = mine[tag] = array("Q")
                got.extend(words[i:i + stride])
            else:
                others.append(i)
        for tag, got in mine.items():
            queue, sink = arenas[tag]
            self.in_flight -= len(got) // stride
            self._deliver(sink, queue.take(got))
        return others

    # -- hooks -------------------------------------------------------------------

    def _issue(self, req: BlockRequest) -> bool:
        raise NotImplementedError

    def _issue_many(self, reqs: List[BlockRequest]) -> "tuple[int, int]":
        """Stage *reqs* in order: ``(taken, staged)``, *taken* of them off
        the queue (staged, or failed alone: a request this engine cannot
        stage fails with the op and errno named, delivered by ``poll``),
        stopping at the first the kernel side has no room for.  Engines
        that can stage a batch faster than one by one override this."""
        issue = self._issue
        taken = staged = 0
        for req in reqs:
            try:
                if not issue(req):
                    self.blocked = True  # no room: the completion path retries
                    break
            except Exception as exc:
                self._synthetic.append((req, -error_number(exc), exc))
            else:
                staged += 1
            taken += 1
        return taken, staged

    def _commit(self) -> None:
        raise NotImplementedError

    def _reap(self, wait: bool) -> int:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- the queue ---------------------------------------------------------------

    def enqueue(self, req: BlockRequest) -> None:
        if self.closed:
            self.refuse_closed()
        self.pending.append(req)
        if not self.plugged or len(self.pending) >= self.max_batch:
            self.kick()

    def enqueue_many(self, reqs: List[BlockRequest]) -> None:
        """Queue *reqs* and move them into the kernel together (unless
        plugged): one submit for the batch, as far as the queue depth
        allows."""
        if self.closed:
            self.refuse_closed()
        self.pending.extend(reqs)
        if not self.plugged or len(self.pending) >= self.max_batch:
            self.kick()

    def plug(self) -> None:
        self.plugged += 1

    def unplug(self) -> None:
        if self.plugged <= 0:
            raise RuntimeError("unplug without plug")
        self.plugged -= 1
        if not self.plugged:
            self.kick()

    def kick(self) -> None:
        """Move pending requests into the kernel, up to the queue depth, and
        submit them as one batch."""
        staged = 0
        pending = self.pending
        faults = self.faults
        if faults is None and not self.blocked:
            # no fault plan: the whole batch to the engine at once
            room = self.queue_depth - self.in_flight
            if not pending or room <= 0:
                return
            if room >= len(pending):
                batch = list(pending)
                pending.clear()
            else:
                batch = [pending.popleft() for _ in range(room)]
            taken, staged = self._issue_many(batch)
            if taken < len(batch):
                pending.extendleft(reversed(batch[taken:]))
            self.in_flight += taken
            if staged:
                self._commit()
            return
        while pending and self.in_flight < self.queue_depth and not self.blocked:
            req = pending[0]
            err = faults.error_for_next() if faults is not None else 0
            if err:  # fails as if refused by the kernel; delivered by poll()
                pending.popleft()
                self.in_flight += 1
                self._synthetic.append((req, -err, None))
                continue
            try:
                issued = self._issue(req)
            except Exception as exc:
                # A request this engine cannot stage (a buffer it cannot
                # pin, a field of the wrong type): that request fails, with
                # the op and errno named, delivered by poll() like any
                # completion; the queue behind it goes on.
                pending.popleft()
                self.in_flight += 1
                self._synthetic.append((req, -error_number(exc), exc))
                continue
            if not issued:
                self.blocked = True  # no room: the completion path retries
                break
            pending.popleft()
            self.in_flight += 1
            staged += 1
        if staged:
            self._commit()

    def poll(self, wait: bool = False) -> int:
        """Reap completions (blocking for at least one if *wait* and any are
        in flight), run their callbacks, and refill from the software queue.
        Returns the number of kernel completions handled.

        A callback that raises does not cost the others: every completion
        reaped in this call is still delivered (its request finished, its
        callbacks run) and the queue refilled; then the first exception is
        raised to the caller, unchanged, and any further ones of the same
        call are logged on the ``uring.block`` logger (``raise_deferred``).
        Nothing is left behind: the next ``poll``/``wait`` goes on normally."""
        if self.forked:
            self.refuse_closed()
        n = self._poll(wait)
        if self._raised:
            self._raise_deferred()
        return n

    def _poll(self, wait: bool) -> int:
        """``poll`` without raising what callbacks raised (kept in ``_raised``)."""
        n = 0
        synthetic = self._synthetic
        while synthetic:
            entry = synthetic.popleft()
            req, res, cause = entry
            try:
                if cause is None:
                    self._completed(req, res)
                else:
                    self._failed(req, -res, cause)
            except BaseException:
                # raised as the call started (a signal handler's): nothing
                # done, so it goes back, first (see _keep_undelivered)
                synthetic.appendleft(entry)
                raise
            n += 1
        if self._taken:
            n += self._deliver_taken()
        n += self._reap(wait and not n and self.in_flight > 0)
        if self.pending or self.blocked:
            self.blocked = False
            if not self.plugged:
                self.kick()
        return n

    def _keep_undelivered(self, taken: "Sequence[Sequence[Any]]",
                          counted_out: bool = False) -> None:
        """Completions taken from the kernel side and not delivered, because
        an exception (a signal handler's: Ctrl-C) broke into the delivery:
        kept with the synthetic ones, so the next ``poll`` delivers each
        once; they count in flight until then (*counted_out*: the caller
        had already counted them out).  A request already finished is not
        delivered again.

        Python raises a signal handler's exception as a function starts
        (or a loop goes round), so the delivery is written to make every
        such point safe: ``_completed`` and ``_failed`` catch what is
        raised inside them and keep an unfinished request themselves, and
        a request is marked finished only after the image's bookkeeping
        (``BlockRequest.complete``)."""
        kept = [item for item in taken if not item[0].finished]
        if counted_out:
            self.in_flight += len(kept)
        self._taken.extend(kept)

    def _deliver_taken(self) -> int:
        """``_completed`` for each completion in ``_taken`` (taken from the
        kernel side, counted in flight until delivered), in order.  Each
        leaves the queue only as it is delivered: an exception breaking in
        as the call starts (nothing done) puts it back, first."""
        taken = self._taken
        completed = self._completed
        n = 0
        while taken:
            item = taken.popleft()
            try:
                completed(item[0], item[1])
            except BaseException:
                taken.appendleft(item)
                raise
            n += 1
        return n

    def _raise_deferred(self) -> None:
        errors, self._raised = self._raised, []
        raise_deferred(errors)

    def drain(self) -> None:
        """Wait until nothing is queued or in flight.  If callbacks raised
        meanwhile, every request is still finished first; then the first
        exception is raised (see ``poll``)."""
        while self.in_flight or self.pending:
            if self.plugged and not self.in_flight:
                raise RuntimeError("drain while plugged with requests queued: unplug first")
            self._poll(True)
        if self._raised:
            self._raise_deferred()

    def release_thread(self) -> None:
        """The image is handed to another thread: an engine whose own
        object is bound to a thread (the io_uring engine's ring) lets go."""

    def close(self) -> None:
        """Finish everything in flight, then release the kernel side.  The
        engine is closed even if draining raised (a callback's exception, or
        a kernel error), and that exception is raised afterwards; requests
        that never reached the kernel fail with ``ECANCELED``."""
        if self.closed:
            return
        try:
            self.drain()
        finally:
            self.closed = True
            try:
                while self.pending:
                    req = self.pending.popleft()
                    self.in_flight += 1
                    self._completed(req, -errno.ECANCELED)
            finally:
                # only after drain raised: that exception goes on; these are logged
                errors, self._raised = self._raised, []
                for exc in errors:
                    _log.error("a block completion callback raised while its request was "
                               "cancelled by close(): %r", exc, exc_info=exc)
                self._close()

    # -- completion --------------------------------------------------------------

    def _completed(self, req: BlockRequest, res: int) -> None:
        """One kernel completion for *req*: finish it, or queue the rest."""
        self.in_flight -= 1
        done_before, deliveries = req.done, req.deliveries
        try:
            if res < 0:
                if -res in (errno.EAGAIN, errno.EINTR) and req.retries < MAX_RETRIES:
                    req.retries += 1
                    self.resubmitted += 1
                    self.pending.appendleft(req)
                    return
                if -res == errno.EOPNOTSUPP and req.op is Op.DISCARD and self.block_device:
                    # PUNCH_HOLE on a block device is a zero-out that may
                    # not fall back to writing (blkdev_issue_zeroout,
                    # NOFALLBACK): a device without write-zeroes refuses
                    # it.  ZERO_RANGE falls back: the range still reads
                    # back zeros (the request's op now says write_zeroes).
                    req.op = Op.WRITE_ZEROES
                    self.resubmitted += 1
                    self.pending.appendleft(req)
                    return
                req.fail(-res)
                return
            op = req.op
            if op is Op.READ or op is Op.WRITE:
                done = req.done + res
                req.done = done
                if done == req.length:
                    req.complete(done)  # the common case: all of it
                    return
                if done < req.length:
                    if res == 0 or (done % self.granule and op is Op.READ):
                        # End of file: nothing more, or (O_DIRECT) a count
                        # that stops inside a block, which only EOF does;
                        # the rest could not be asked for at that offset.
                        if req.op is Op.WRITE:
                            req.fail(errno.ENOSPC)
                            return
                        for v in req.remaining_views():  # end of file: zeroes
                            v[:] = bytes(v.nbytes)
                        req.done = req.length
                    else:
                        self.resubmitted += 1
                        self.pending.appendleft(req)  # the rest, at offset + done
                        return
                req.complete(req.length)
            else:
                req.complete(0)
        except BaseException as exc:  # noqa: BLE001 - a callback's: raised by poll()
            if req.deliveries == deliveries and req not in self.pending:
                # not a callback's: raised before the request finished (a
                # signal handler's, as a call started): it is delivered
                # again, first, by the next poll
                req.done = done_before
                self.in_flight += 1
                self._synthetic.appendleft((req, res, None))
            self._raised.append(exc)

    def _failed(self, req: BlockRequest, err: int, cause: Optional[BaseException]) -> None:
        """*req*, counted in flight, failed inside the engine (never reached
        the kernel) with *cause*: finish it with *err*."""
        self.in_flight -= 1
        deliveries = req.deliveries
        try:
            req.fail(err, cause)
        except BaseException as exc:  # noqa: BLE001 - a callback's: raised by poll()
            if req.deliveries == deliveries:  # see _completed
                self.in_flight += 1
                self._synthetic.appendleft((req, -err, cause))
            self._raised.append(exc)

    # -- what the engines share for staging ---------------------------------------

    def _transfer(self, req: BlockRequest) -> "tuple[int, List[memoryview]]":
        """(file offset, buffers) still to transfer for a read or write,
        shortened when a fault plan asks for a short count."""
        if not req.done and self.faults is None:
            return req.offset, req.views  # the common case: nothing done yet
        views = req.remaining_views()
        if self.faults is not None:
            views = self.faults.shorten(views, req.op is Op.WRITE)
        return req.offset + req.done, views


@dataclass(frozen=True)
class EngineEntry:
    """One row of ``ENGINE_TABLE``: where the engine's class lives (imported
    only when opened) and which engine-specific open options it takes."""

    module: str
    cls: str
    options: FrozenSet[str] = frozenset()


#: ``aio=`` name -> engine.  QEMU's ``-drive aio=`` names.
ENGINE_TABLE: Dict[str, EngineEntry] = {
    "io_uring": EngineEntry("uring.block.engine_uring", "UringEngine",
                            frozenset({"fixed_files", "sqpoll", "iopoll", "kernel"})),
    "native": EngineEntry("uring.block.engine_aio", "AioEngine"),
    "threads": EngineEntry("uring.block.engine_threads", "ThreadsEngine"),
}


def make_engine(aio: str, fd: int, queue_depth: int, faults: Optional[IoFaults] = None,
                max_batch: Optional[int] = None, **options: Any) -> Engine:
    """Open the engine *aio* names on *fd*.  An engine-specific option the
    engine does not take is refused by name if it is set (a false or None
    value is the same as leaving it out)."""
    entry = ENGINE_TABLE.get(aio)
    if entry is None:
        raise ValueError(f"aio must be one of {tuple(ENGINE_TABLE)} or 'auto', got {aio!r}")
    given = {k: v for k, v in options.items() if v}
    for key in given:
        if key not in entry.options:
            owners = [n for n, e in ENGINE_TABLE.items() if key in e.options]
            if not owners:
                raise TypeError(f"unknown engine option {key!r}")
            raise ValueError(f"{key} is an {'/'.join(owners)} option; aio={aio} has no such thing")
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    engine: Engine = cls(fd, queue_depth, faults=faults, max_batch=max_batch, **given)
    return engine
