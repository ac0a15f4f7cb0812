"""One block request and the I/O vector arithmetic it needs.

A request is what QEMU calls an AIOCB: an operation on a byte range with a
vector of buffers, a running count of bytes already done (a short read or
write is resubmitted for the rest, the offset advanced by what was done),
and one completion, delivered once.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import os
from typing import Any, Callable, List, Optional, Sequence, Tuple

__all__ = ["Op", "BlockRequest", "advance", "as_view", "as_views", "raise_deferred", "total",
           "view_and_address"]

_c_char = ctypes.c_char
_addressof = ctypes.addressof


class Op(enum.Enum):
    READ = "read"
    WRITE = "write"
    FLUSH = "flush"
    DISCARD = "discard"
    WRITE_ZEROES = "write_zeroes"


def as_view(b: Any, writable: bool) -> memoryview:
    """A flat byte view of *b*; a read's buffer must be writable.

    Every engine hands the buffer's address to the kernel (or to
    ``preadv``/``pwritev``), so it must be one C-contiguous run of bytes: a
    strided view (``memoryview(buf)[::2]``) is refused here, at submit,
    with ``ValueError``, never copied behind the caller's back (a read
    into a copy would have to be scattered back, and a write's copy taken
    now would not see later changes the caller may expect).

    The view is always the request's own, even when *b* is a memoryview:
    it holds the buffer export that keeps the memory where the kernel will
    write it (a ``bytearray`` cannot be resized, an ``mmap`` cannot be
    closed) until the request is finished and dropped, whatever the caller
    does to its own view (``release()`` included)."""
    try:
        v = memoryview(b)
    except TypeError:
        raise TypeError(f"a buffer must be a bytes-like object, not {type(b).__name__}") \
            from None
    except ValueError:  # a released memoryview
        raise ValueError("a released memoryview cannot be a request's buffer") from None
    if writable and v.readonly:
        raise TypeError(f"cannot read into a read-only {type(b).__name__}")
    if not v.c_contiguous:
        raise ValueError(f"buffers must be C-contiguous: a strided or Fortran-order view of "
                         f"{v.nbytes} bytes cannot be handed to the kernel (copy it first, "
                         f"e.g. bytes(view) or bytearray(view))")
    if v.format != "B" or v.ndim != 1:
        v = v.cast("B")
    return v


def view_and_address(b: Any, writable: bool) -> Tuple[memoryview, int]:
    """``as_view(b, writable)`` and the address of its first byte (0 when
    the engine must take it: a read-only buffer, whose address ``export``
    knows, or an empty one), for a one-buffer read or write: taken once,
    at submit, for the engines that hand it to the kernel.  ctypes'
    ``from_buffer`` checks on the way that the view is writable,
    C-contiguous and not empty; the view holds the export that keeps the
    address valid while the request lives."""
    try:
        v = memoryview(b)
        address = _addressof(_c_char.from_buffer(v))
    except (TypeError, ValueError):  # as_view says what is wrong
        return as_view(b, writable), 0
    if v.ndim != 1 or v.itemsize != 1:
        v = v.cast("B")
    return v, address


def as_views(buffers: Sequence[Any], writable: bool) -> List[memoryview]:
    """Flat byte views of *buffers* (a sequence of buffers, not one buffer)."""
    if isinstance(buffers, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"expected a sequence of buffers, got one {type(buffers).__name__}")
    try:
        items = list(buffers)
    except TypeError:
        raise TypeError(f"expected a sequence of buffers, not {type(buffers).__name__}") \
            from None
    return [as_view(b, writable) for b in items]


def total(views: Sequence[memoryview]) -> int:
    return sum(v.nbytes for v in views)


def advance(views: Sequence[memoryview], done: int) -> List[memoryview]:
    """The part of *views* after the first *done* bytes."""
    out: List[memoryview] = []
    for v in views:
        if done >= v.nbytes:
            done -= v.nbytes
            continue
        out.append(v[done:] if done else v)
        done = 0
    return out


Callback = Callable[["BlockRequest"], None]

_log = logging.getLogger("uring.block")


def raise_deferred(errors: List[BaseException]) -> None:
    """Raise the first of *errors* (exceptions raised by completion
    callbacks while a batch was being delivered), unchanged, so ``except``
    clauses for it work.  The others are not lost: each is logged with its
    traceback on the ``uring.block`` logger, and (Python 3.11+) a note on
    the raised exception says how many there were."""
    first = errors[0]
    rest = errors[1:]
    for exc in rest:
        _log.error("a block completion callback raised (after another one in the same "
                   "batch, which is re-raised): %r", exc, exc_info=exc)
    if rest and hasattr(first, "add_note"):
        first.add_note(f"{len(rest)} more completion callback exception(s) in the same batch "
                       f"were logged on the 'uring.block' logger: "
                       + "; ".join(repr(e) for e in rest))
    raise first


class BlockRequest:
    """An in-flight block request.

    ``result`` is the number of bytes transferred (reads and writes, always
    the full length on success: short transfers are finished internally),
    0 for flush/discard/write-zeroes; ``error`` an ``OSError`` naming the
    operation and the range.  ``callbacks`` run once, on completion, from
    whichever call reaped it (``poll``/``wait``), never from another thread.
    """

    __slots__ = ("op", "offset", "length", "views", "done", "result", "error",
                 "callback", "more_callbacks", "finished", "retries", "image", "tag", "collect",
                 "address", "deliveries",
                 "__weakref__")

    def __init__(self, op: Op, offset: int, length: int, views: List[memoryview],
                 callback: Optional[Callback] = None, tag: Any = None, address: int = 0) -> None:
        self.op = op
        self.offset = offset
        self.length = length
        self.views = views
        self.done = 0  # bytes completed so far (short transfers)
        self.result: Optional[int] = None
        self.error: Optional[OSError] = None
        #: the first callback (the one passed at submit); more, from
        #: ``add_done_callback``, wait in ``more_callbacks``
        self.callback = callback
        self.more_callbacks: Optional[List[Callback]] = None
        self.finished = False
        self.retries = 0
        self.image: Any = None
        #: the caller's, handed back untouched (``Image.submit_reads(tags=)``)
        self.tag = tag
        #: finished, it goes to the image's list for ``Image.reap``
        self.collect = False
        #: the single buffer's address, once taken (at submit, or by an
        #: engine: 0 until then); the request's own view keeps it valid
        #: while it lives
        self.address = address
        #: completions delivered so far (one per submission; ``rearm`` keeps
        #: it): an engine tells by it whether an exception out of
        #: ``complete()`` came before the request finished (a signal
        #: handler's, as the call started) or from a callback after it
        self.deliveries = 0

    # -- what the engine asks -------------------------------------------------

    @property
    def remaining(self) -> int:
        return self.length - self.done

    def remaining_views(self) -> List[memoryview]:
        return advance(self.views, self.done)

    # -- completion --------------------------------------------------------------

    def complete(self, result: int) -> None:
        if self.finished:  # pragma: no cover - an engine bug, never silent
            raise RuntimeError(f"request completed twice: {self!r}")
        # _finish, inlined: this runs once per request
        self.result = result
        image = self.image
        if image is not None:
            image.request_finished(self)  # the image's own bookkeeping first
        # finished only now: an interruption before this (a signal
        # handler's exception as request_finished starts) leaves the
        # request unfinished, and the engine delivers it again
        self.finished = True
        self.deliveries += 1
        callback = self.callback
        if callback is not None:
            if self.more_callbacks is None:
                callback(self)  # raises to the engine, which delivers the rest of the batch
            else:
                self._run_callbacks()

    def fail(self, err: int, cause: Optional[BaseException] = None) -> None:
        """Finish with ``OSError(err)`` naming the operation and the range;
        *cause* (an exception an engine met while running the request) is
        named in the message and chained as ``__cause__``."""
        what = f"{self.op.value} of {self.length} bytes at offset {self.offset}"
        text = f"{what}: {os.strerror(err)}"
        if cause is not None:
            text += f" ({type(cause).__name__}: {cause})"
        exc = OSError(err, text)
        exc.__cause__ = cause
        self._finish(None, exc)

    def _finish(self, result: Optional[int], error: Optional[OSError]) -> None:
        if self.finished:  # pragma: no cover - an engine bug, never silent
            raise RuntimeError(f"request completed twice: {self!r}")
        self.result = result
        self.error = error
        if self.image is not None:
            self.image.request_finished(self)  # the image's own bookkeeping first
        self.finished = True  # only now: see complete()
        self.deliveries += 1
        callback = self.callback
        if callback is None:
            return
        if self.more_callbacks is None:
            callback(self)  # raises to the engine, which delivers the rest of the batch
            return
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        """Every callback runs even if one raises; the first exception is
        raised after them (the others go with it: see raise_deferred)."""
        errors: List[BaseException] = []
        for cb in self.callbacks:
            try:
                cb(self)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
        if errors:
            raise_deferred(errors)

    def rearm(self, offset: int, op: "Op | None" = None) -> None:
        """Make a finished request new again at *offset* (and *op*), with
        the same buffers and callbacks: fio's reuse of an ``io_u``.  Only
        ``Image.resubmit`` calls this, after checking everything."""
        self.offset = offset
        if op is not None:
            self.op = op
        self.done = 0
        self.result = None
        self.error = None
        self.finished = False
        self.retries = 0

    def add_done_callback(self, cb: Callback) -> None:
        if self.finished:
            cb(self)
        elif self.callback is None:
            self.callback = cb
        elif self.more_callbacks is None:
            self.more_callbacks = [cb]
        else:
            self.more_callbacks.append(cb)

    @property
    def callbacks(self) -> List[Callback]:
        """Every callback, in the order they were added."""
        if self.callback is None:
            return []
        return [self.callback] + (self.more_callbacks or [])

    def value(self) -> int:
        """The result, or raise the error (once finished)."""
        if not self.finished:
            raise RuntimeError("request still in flight: wait for it first")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __repr__(self) -> str:
        state = "done" if self.finished else "in flight"
        return f"<BlockRequest {self.op.value} off={self.offset} len={self.length} {state}>"

