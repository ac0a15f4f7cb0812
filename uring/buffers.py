"""Pinning Python buffers so the kernel may hold their addresses.

An SQE carries a raw address.  Between submission and the completion being
reaped, the memory behind it must neither be freed (the object collected) nor
moved (a ``bytearray`` resized).  ``PinnedBuffer`` takes a buffer export with
``PyObject_GetBuffer`` — the same thing a C extension does — which makes the
exporter refuse to resize (``BufferError``) until the export is released, and
holds a reference so it cannot be collected.  The ring keeps the
``PinnedBuffer`` in its in-flight table until the request's last CQE.

A read needs a *writable* export: asking for ``PyBUF_WRITABLE`` makes
``bytes`` or a read-only ``memoryview`` fail here, in Python, instead of
letting the kernel write into an immutable object.
"""

from __future__ import annotations

import ctypes
import gc
import types
import weakref
from typing import Any, Iterable, Sequence, Tuple

from . import abi

__all__ = ["IovecArray", "PinnedBuffer", "ReleasedBufferError", "address_of", "export", "pin"]

_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 0x0001


class _Py_buffer(ctypes.Structure):
    # CPython's Py_buffer; ``obj`` kept as a raw pointer so ctypes never
    # touches its reference count (PyBuffer_Release does).
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(_Py_buffer), ctypes.c_int]
_GetBuffer.restype = ctypes.c_int
_Release = ctypes.pythonapi.PyBuffer_Release
_Release.argtypes = [ctypes.POINTER(_Py_buffer)]
_Release.restype = None


_c_char = ctypes.c_char
_addressof = ctypes.addressof


def _bytes_address_slow(b: bytes) -> int:
    # A c_char_p made from bytes points into the object itself (no copy).
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value or 0


# Where CPython keeps a bytes object's data: a fixed distance from the
# object (PyBytesObject.ob_sval).  Measured here, checked on a second object.
_first, _second = bytes(range(5)), bytes(range(7))
_BYTES_OFFSET = _bytes_address_slow(_first) - id(_first)
if _bytes_address_slow(_second) - id(_second) != _BYTES_OFFSET:  # pragma: no cover
    raise ImportError("bytes objects do not keep their data at a fixed offset here")
del _first, _second
#: ``id(b) + BYTES_OFFSET`` is where an immutable ``bytes`` object's data
#: lies (valid while *b* lives): the address a write of it hands the kernel.
BYTES_OFFSET = _BYTES_OFFSET


#: What may keep pinned buffers for the kernel (rings: their in-flight
#: records and registered tables; AIO contexts): each has ``held_roots()``,
#: the objects it keeps for requests the kernel may still be using.
#: ``PinnedBuffer.release`` asks them, so a buffer in use is never let go.
_holders: "weakref.WeakSet[Any]" = weakref.WeakSet()

# what a search for a held buffer does not go into: code, classes, modules
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
           types.MethodType, types.CodeType, int, float, str, bytes)


def add_holder(holder: Any) -> None:
    """Register *holder* (it has ``held_roots()``; kept weakly) as
    something ``PinnedBuffer.release`` asks before letting a buffer go."""
    _holders.add(holder)


def holds(roots: Iterable[Any], buf: Any, depth: int = 6) -> bool:
    """Whether *buf* is reachable from *roots* (what a holder keeps for the
    kernel: records, tuples of what they keep, iovec arrays, tables) in at
    most *depth* steps: a search, made only when a buffer is released."""
    seen = set()
    level = [r for r in roots if r is not None]
    for _ in range(depth):
        following = []
        for obj in level:
            if obj is buf:
                return True
            if id(obj) in seen or isinstance(obj, _OPAQUE):
                continue
            seen.add(id(obj))
            following.extend(gc.get_referents(obj))
        if not following:
            return False
        level = following
    return any(obj is buf for obj in level)


class PinnedBuffer:
    """A contiguous buffer held in place: ``address`` and ``nbytes`` stay valid
    until ``release()`` (or until this object is collected).

    ``writable=True`` is required for memory the kernel writes (reads,
    receives); it refuses read-only objects with ``TypeError``.

    After ``release()`` the object may move or be freed, so ``address``
    means nothing: ``live`` and ``writable`` turn False, and every prep
    (and ``pin``) refuses the buffer with ``ReleasedBufferError`` instead
    of handing the kernel the old address.
    """

    __slots__ = ("obj", "address", "nbytes", "writable", "live", "_view", "_export",
                 "__weakref__")
    obj: Any
    address: int
    nbytes: int
    writable: bool
    live: bool

    def __init__(self, obj: Any, *, writable: bool = False) -> None:
        self._view: _Py_buffer | None = None
        self._export: Any = None
        self.live = False
        if isinstance(obj, PinnedBuffer):
            if not obj.live:
                raise ReleasedBufferError(obj)
            obj = obj.obj
        self.obj = obj
        self.writable = writable
        # Fast paths (a request pins its buffer every time, so this is hot):
        # a writable buffer is exported by ctypes' from_buffer, which holds
        # a memoryview, hence the export, as long as it lives; bytes are
        # immutable and never move, so a reference is the pin.
        if obj.__class__ is bytes and not writable:
            self._export = obj
            self.address = id(obj) + _BYTES_OFFSET
            self.nbytes = len(obj)
            self.live = True
            return
        try:
            mv = memoryview(obj)
        except TypeError as exc:
            raise TypeError(f"a {type(obj).__name__} cannot be pinned: {exc}") from None
        if not mv.readonly and mv.c_contiguous and mv.nbytes:
            self._export = _c_char.from_buffer(mv)
            self.address = _addressof(self._export)
            self.nbytes = mv.nbytes
            self.live = True
            return
        mv.release()
        view = _Py_buffer()
        try:
            _GetBuffer(obj, ctypes.byref(view), _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE)
        except BufferError as exc:
            kind = type(obj).__name__
            if writable:
                raise TypeError(
                    f"the kernel writes into this buffer, but a {kind} is read-only "
                    f"or not contiguous ({exc}); pass a bytearray, a writable memoryview "
                    "or an mmap"
                ) from None
            raise TypeError(f"a {kind} cannot be pinned: {exc}") from None
        self._view = view
        self.address = view.buf or 0
        self.nbytes = view.len
        self.live = True

    def release(self) -> None:
        """Give the export back (the object may be resized or collected
        after); the buffer is refused from now on.

        Refused with ``BufferError`` while the kernel may still use the
        buffer: a request in flight keeps it (until its final CQE), or a
        registered-buffer table holds it (until unregistered)."""
        if self.live and _holders:
            for holder in list(_holders):
                if holds(holder.held_roots(), self):
                    raise BufferError(
                        f"{self!r} is in use by the kernel ({holder!r} keeps it for a request "
                        "in flight or a registered table): release it after the final "
                        "completion (or after unregistering)")
        self._release()

    def _release(self) -> None:
        self.live = self.writable = False
        self._export = None
        view = self._view
        if view is not None:
            self._view = None
            _Release(ctypes.byref(view))

    @property
    def pinned(self) -> bool:
        return self.live

    def __len__(self) -> int:
        return self.nbytes

    def __del__(self) -> None:
        self._release()  # collected: nothing keeps it, no request holds it

    def __repr__(self) -> str:
        state = "pinned" if self.pinned else "released"
        return f"<PinnedBuffer {self.nbytes} bytes at {self.address:#x} {state}>"


def pin(obj: Any, writable: bool) -> PinnedBuffer:
    """*obj* pinned (an already pinned buffer is reused if it allows
    *writable*; a released one is refused)."""
    if type(obj) is PinnedBuffer:
        if not obj.live:
            raise ReleasedBufferError(obj)
        if obj.writable or not writable:
            return obj
    return PinnedBuffer(obj, writable=writable)


class ReleasedBufferError(ValueError):
    """A ``PinnedBuffer`` was used after ``release()``: its address may no
    longer be the object's, so no SQE may carry it."""

    def __init__(self, buf: "PinnedBuffer") -> None:
        super().__init__(
            f"{buf!r} was released: its object may have moved or been freed, so its "
            "address cannot go to the kernel; pin the object again"
        )


_bytearray = bytearray
_mmap_type = __import__("mmap").mmap


def export(obj: Any, writable: bool) -> Tuple[Any, int, int]:
    """``(keep, address, nbytes)`` for a buffer passed per call: *keep* is
    what holds the memory in place while the ring holds it.

    The cheap form of ``pin`` for the per-request path: a non-empty
    ``bytearray`` or ``mmap``, or a writable contiguous ``memoryview``, is
    exported by ctypes' ``from_buffer`` alone (its memoryview is the export:
    the bytearray refuses to resize and the mmap to close while it lives), with no ``PinnedBuffer`` around it; an
    immutable ``bytes`` for a write is its own pin.  Anything else (and a
    ``PinnedBuffer``, checked live) goes through ``pin``."""
    cls = obj.__class__
    if (cls is _bytearray or cls is _mmap_type) and obj:
        try:
            keep = _c_char.from_buffer(obj)
        except TypeError:  # a read-only mmap: pin() says what is wrong
            pass
        else:
            return keep, _addressof(keep), len(obj)
    elif cls is memoryview:
        try:
            keep = _c_char.from_buffer(obj)
        except (TypeError, ValueError):  # read-only, not contiguous, empty: pin() decides
            pass
        else:
            return keep, _addressof(keep), obj.nbytes
    elif cls is bytes and not writable:
        return obj, id(obj) + _BYTES_OFFSET, len(obj)
    p = pin(obj, writable)
    return p, p.address, p.nbytes


def address_of(obj: Any) -> int:
    """Where *obj*'s bytes are now, for a check (alignment, which registered
    buffer it lies in); nothing is pinned once this returns."""
    p = PinnedBuffer(obj)
    try:
        return p.address
    finally:
        p.release()


class IovecArray:
    """An ``iovec[]`` for READV/WRITEV/registration, with its buffers pinned.

    The kernel reads the array itself (at submission, or later from an
    io-wq worker) and then the memory it points to, so both the array and
    every buffer stay referenced here until the request completes.
    """

    __slots__ = ("buffers", "array", "address", "count", "nbytes")

    def __init__(self, buffers: Sequence[Any], *, writable: bool) -> None:
        self.buffers = [pin(b, writable) for b in buffers]
        self.count = len(self.buffers)
        self.array = (abi.iovec * max(self.count, 1))()
        for i, b in enumerate(self.buffers):
            self.array[i].iov_base = b.address
            self.array[i].iov_len = b.nbytes
        self.address: int = ctypes.addressof(self.array)
        self.nbytes = sum(b.nbytes for b in self.buffers)
