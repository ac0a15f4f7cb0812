"""The one record a request leaves with the ring, and its completion.

Every ``prep_*`` goes through ``RingCore.prep_rw`` (liburing's
``io_uring_get_sqe`` + ``io_uring_prep_rw``), which fills the SQE and, from
the same call, files a ``Request`` under the SQE's ``user_data``: the
opcode, the target (the fd, path or address the op acts on, kept for the
error message), every object whose memory the SQE points at (buffers,
iovec arrays, paths, ``kernel_timespec``, ``sockaddr``, ``msghdr``), how to
decode a result, and an *owner*: whatever the caller wants handed back with
the completion (a block request, an asyncio future, a callback), like the
``void *`` of liburing's ``io_uring_sqe_set_data``.  The ring holds the
record until the request's *final* CQE is reaped: the one without
``IORING_CQE_F_MORE`` (a multishot request posts many; ``SEND_ZC`` posts its
result with ``F_MORE`` and then an ``IORING_CQE_F_NOTIF`` CQE once the
kernel no longer reads the buffer).  There is no other table: the block
engines and the asyncio driver find their request, future or callback as
the record's owner.

A request that holds nothing and has no owner (a plain NOP) files no
record: its CQE's ``user_data`` is all there is to know.

``Ring.completions()`` pairs each CQE with its record as a ``Completion``:
``res`` as the kernel wrote it, plus ``result()``, which is the byte count
/ new fd / decoded value, or raises the errno's own ``OSError`` subclass
with the op and the target named.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Any, Callable, List, Optional, Tuple

from . import abi
from .buffers import PinnedBuffer, address_of
from .errors import direct_io_hint, kernel_error

__all__ = ["Completion", "Request", "op_name"]

_F_MORE = int(abi.IORING_CQE_F_MORE)
_F_NOTIF = int(abi.IORING_CQE_F_NOTIF)
_F_BUFFER = int(abi.IORING_CQE_F_BUFFER)
_BUFFER_SHIFT = int(abi.IORING_CQE_BUFFER_SHIFT)
#: Reads and writes that may hit O_DIRECT's alignment rules (EINVAL).
_READS = frozenset(int(op) for op in (
    abi.IORING_OP_READ, abi.IORING_OP_READV, abi.IORING_OP_READ_FIXED,
    abi.IORING_OP_READV_FIXED))
_RW = _READS | frozenset(int(op) for op in (
    abi.IORING_OP_WRITE, abi.IORING_OP_WRITEV, abi.IORING_OP_WRITE_FIXED,
    abi.IORING_OP_WRITEV_FIXED))
_PLAIN_RW = frozenset((int(abi.IORING_OP_READ), int(abi.IORING_OP_WRITE)))
_VECTORED = frozenset((int(abi.IORING_OP_READV), int(abi.IORING_OP_WRITEV)))


def _spans(opcode: int, keep: Any) -> Optional[List[Tuple[int, Optional[int]]]]:
    """The request's buffers as ``(address, nbytes)``, as far as the record
    tells (None: it does not, e.g. a fixed-buffer op, whose address lies
    somewhere inside the registered buffer)."""
    if opcode in _PLAIN_RW:
        if isinstance(keep, PinnedBuffer):
            return [(keep.address, keep.nbytes)] if keep.live else None
        if isinstance(keep, ctypes.c_char):  # a per-call export (buffers.export)
            view = getattr(keep, "_objects", None)  # the exported memoryview
            return [(ctypes.addressof(keep),
                     view.nbytes if isinstance(view, memoryview) else None)]
        if isinstance(keep, bytes):
            return [(address_of(keep), len(keep))]
        return None
    if opcode in _VECTORED:
        buffers = getattr(keep, "buffers", None)  # an IovecArray
        if isinstance(buffers, list) and all(isinstance(b, PinnedBuffer) and b.live
                                             for b in buffers):
            return [(b.address, b.nbytes) for b in buffers]
    return None


def op_name(opcode: int) -> str:
    """``IORING_OP_*`` name of *opcode* (or the number, if unknown here)."""
    try:
        return abi.IoringOp(opcode).name
    except ValueError:
        return f"opcode {opcode}"


class Request:
    """One request as the ring remembers it, from its prep to its final CQE.

    user_data: the SQE's ``user_data`` (the key the CQE comes back with).
    opcode:    the ``IORING_OP_*``.
    target:    what the op acts on (fd, path, address), for messages.
    keep:      the objects the kernel may touch (their memory stays valid
               and pinned while this record is held).
    decode:    turns a successful ``res`` into the op's value (``STATX``: a
               ``statx`` result; ``GETXATTR``: the bytes), or None.
    owner:     the caller's own object for this request (``set_owner``),
               handed back with the CQE; None if none was given.
    """

    __slots__ = ("user_data", "opcode", "target", "keep", "decode", "owner")

    def __init__(self, user_data: int, opcode: int, target: Any = None, keep: Any = None,
                 decode: Optional[Callable[[int], Any]] = None, owner: Any = None) -> None:
        self.user_data = user_data
        self.opcode = opcode
        self.target = target
        self.keep = keep
        self.decode = decode
        self.owner = owner

    @property
    def name(self) -> str:
        return op_name(self.opcode)

    def __repr__(self) -> str:
        target = "" if self.target is None else f" {self.target!r}"
        return f"<Request {self.name}{target} user_data={self.user_data}>"


class Completion:
    """A CQE paired with the ``Request`` that produced it.

    ``request`` is None for a CQE no record stands behind: a NOP (nothing
    to hold), a registered resource's tag (``IORING_REGISTER_*2`` with
    tags), a ``MSG_RING`` message posted into this ring, or a failed
    ``IOSQE_CQE_SKIP_SUCCESS`` request reaped raw (``completions()`` finds
    a standalone one's record among the skipped ones).
    """

    __slots__ = ("user_data", "res", "flags", "big", "request")

    def __init__(self, cqe: Any, request: Optional[Request]) -> None:
        self.user_data: int = cqe[0]
        self.res: int = cqe[1]
        self.flags: int = cqe[2]
        self.big: tuple = tuple(cqe[3:])
        self.request = request

    @property
    def opcode(self) -> Optional[int]:
        return None if self.request is None else self.request.opcode

    @property
    def owner(self) -> Any:
        """The request's owner (``RingCore.set_owner``), or None."""
        return None if self.request is None else self.request.owner

    @property
    def more(self) -> bool:
        """``IORING_CQE_F_MORE``: this request will post more CQEs."""
        return bool(self.flags & _F_MORE)

    @property
    def notif(self) -> bool:
        """``IORING_CQE_F_NOTIF``: a zero-copy send's notification: the
        kernel no longer reads the buffer."""
        return bool(self.flags & _F_NOTIF)

    @property
    def buffer_id(self) -> Optional[int]:
        """The provided buffer the kernel picked (``IORING_CQE_F_BUFFER``)."""
        if self.flags & _F_BUFFER:
            return self.flags >> _BUFFER_SHIFT
        return None

    @property
    def error(self) -> Optional[OSError]:
        """The ``OSError`` for a negative ``res`` (op and target named), else None."""
        if self.res >= 0 or self.flags & _F_NOTIF:
            return None
        req = self.request
        if req is None:
            return kernel_error(-self.res, f"request {self.user_data}")
        detail = ""
        if self.res == -_errno.EINVAL and req.opcode in _RW and req.target.__class__ is int:
            # O_DIRECT's alignment rules are the usual EINVAL of a read/write.
            detail = direct_io_hint(req.target, read=req.opcode in _READS,
                                    spans=_spans(req.opcode, req.keep))
        return kernel_error(-self.res, req.name, req.target, detail)

    def result(self) -> Any:
        """``res`` decoded: the byte count, the new fd, the op's value; or
        raise the ``OSError`` the kernel reported."""
        if self.flags & _F_NOTIF:
            # A notification's res holds flags, not a result
            # (IORING_NOTIF_USAGE_ZC_COPIED is bit 31).
            return self.res & 0xFFFFFFFF
        if self.res < 0:
            raise self.error  # type: ignore[misc]
        req = self.request
        if req is not None and req.decode is not None:
            return req.decode(self.res)
        return self.res

    def __repr__(self) -> str:
        res = self.res
        res_text = f"-{_errno.errorcode.get(-res, -res)}" if res < 0 else str(res)
        names = [f.name or "" for f in abi.IoringCqeF if f.value and self.flags & f.value]
        flags = "|".join(names) or "0"
        if self.flags & _F_BUFFER:
            flags += f", buffer_id={self.flags >> _BUFFER_SHIFT}"
        what = self.request.name if self.request is not None else "-"
        return f"Completion({what}, user_data={self.user_data}, res={res_text}, flags={flags})"
