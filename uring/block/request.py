"""One block request and the I/O vector arithmetic it needs.

A request is what QEMU calls an AIOCB: an operation on a byte range with a
vector of buffers, a running count of bytes already done (a short read or
write is resubmitted for the rest, the offset advanced by what was done),
and one completion, delivered once.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Callable, List, Optional, Sequence

__all__ = ["Op", "BlockRequest", "advance", "as_view", "as_views", "total"]


class Op(enum.Enum):
    READ = "read"
    WRITE = "write"
    FLUSH = "flush"
    DISCARD = "discard"
    WRITE_ZEROES = "write_zeroes"


def as_view(b: Any, writable: bool) -> memoryview:
    """A flat byte view of *b*; a read's buffer must be writable."""
    v = b if b.__class__ is memoryview else memoryview(b)
    if writable and v.readonly:
        raise TypeError(f"cannot read into a read-only {type(b).__name__}")
    if v.format != "B" or v.ndim != 1:
        if not v.contiguous:
            raise ValueError("buffers must be contiguous")
        v = v.cast("B")
    return v


def as_views(buffers: Sequence[Any], writable: bool) -> List[memoryview]:
    """Flat byte views of *buffers*."""
    return [as_view(b, writable) for b in buffers]


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


class BlockRequest:
    """An in-flight block request.

    ``result`` is the number of bytes transferred (reads and writes, always
    the full length on success: short transfers are finished internally),
    0 for flush/discard/write-zeroes; ``error`` an ``OSError`` naming the
    operation and the range.  ``callbacks`` run once, on completion, from
    whichever call reaped it (``poll``/``wait``), never from another thread.
    """

    __slots__ = ("op", "offset", "length", "views", "done", "result", "error",
                 "callbacks", "finished", "retries", "image", "__weakref__")

    def __init__(self, op: Op, offset: int, length: int, views: List[memoryview],
                 callback: Optional[Callback] = None) -> None:
        self.op = op
        self.offset = offset
        self.length = length
        self.views = views
        self.done = 0  # bytes completed so far (short transfers)
        self.result: Optional[int] = None
        self.error: Optional[OSError] = None
        self.callbacks: List[Callback] = [callback] if callback else []
        self.finished = False
        self.retries = 0
        self.image: Any = None

    # -- what the engine asks -------------------------------------------------

    @property
    def remaining(self) -> int:
        return self.length - self.done

    def remaining_views(self) -> List[memoryview]:
        return advance(self.views, self.done)

    # -- completion --------------------------------------------------------------

    def complete(self, result: int) -> None:
        self._finish(result, None)

    def fail(self, err: int) -> None:
        what = f"{self.op.value} of {self.length} bytes at offset {self.offset}"
        self._finish(None, OSError(err, f"{what}: {os.strerror(err)}"))

    def _finish(self, result: Optional[int], error: Optional[OSError]) -> None:
        if self.finished:  # pragma: no cover - an engine bug, never silent
            raise RuntimeError(f"request completed twice: {self!r}")
        self.finished = True
        self.result = result
        self.error = error
        if self.image is not None:
            self.image.request_finished(self)  # the image's own bookkeeping first
        for cb in self.callbacks:
            cb(self)

    def add_done_callback(self, cb: Callback) -> None:
        if self.finished:
            cb(self)
        else:
            self.callbacks.append(cb)

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

