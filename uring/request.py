"""What a request leaves with the ring, and what its completion turns into.

A ``prep_*`` method reserves an SQE and, from the same call, a ``Request``
record: the opcode, the target (the fd, path or address the op acts on,
kept for the error message) and every object whose memory the SQE points at
(buffers, iovec arrays, paths, ``kernel_timespec``, ``sockaddr``,
``msghdr``).  The ring holds the record under the request's ``user_data``
until the request's *final* CQE is reaped: the one without
``IORING_CQE_F_MORE`` (a multishot request posts many; ``SEND_ZC`` posts its
result with ``F_MORE`` and then an ``IORING_CQE_F_NOTIF`` CQE once the kernel
no longer reads the buffer).

(The read/write hot path holds the same three facts as a plain tuple,
``(opcode, target, keep)``, which costs a third of an object; ``Completion``
turns it into a ``Request``.)

``Ring.completions()`` pairs each CQE with its record as a ``Completion``:
``res`` as the kernel wrote it, plus ``result()``, which is the byte count /
new fd / decoded value, or raises the errno's own ``OSError`` subclass with
the op and the target named.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Callable, Optional

from . import abi
from .errors import kernel_error
from .ring import op_name

__all__ = ["Completion", "Request"]

_F_MORE = int(abi.IORING_CQE_F_MORE)
_F_NOTIF = int(abi.IORING_CQE_F_NOTIF)
_F_BUFFER = int(abi.IORING_CQE_F_BUFFER)
_BUFFER_SHIFT = int(abi.IORING_CQE_BUFFER_SHIFT)


class Request:
    """One request as the ring remembers it until its final completion.

    opcode: the ``IORING_OP_*``.
    target: what the op acts on (fd, path, address), for messages.
    keep:   the objects the kernel may touch (their memory stays valid
            while this record is held).
    decode: turns a successful ``res`` into the op's value (``STATX``: a
            ``statx`` result; ``GETXATTR``: the bytes), or None.
    """

    __slots__ = ("opcode", "target", "keep", "decode")

    def __init__(self, opcode: int, target: Any = None, keep: Any = None,
                 decode: Optional[Callable[[int], Any]] = None) -> None:
        self.opcode = opcode
        self.target = target
        self.keep = keep
        self.decode = decode

    @property
    def name(self) -> str:
        return op_name(self.opcode)

    def __repr__(self) -> str:
        target = "" if self.target is None else f" {self.target!r}"
        return f"<Request {self.name}{target}>"


class Completion:
    """A CQE paired with the ``Request`` that produced it.

    ``request`` is None for a CQE no request record stands behind: a NOP
    (nothing to hold), a registered resource's tag (``IORING_REGISTER_*2``
    with tags), a ``MSG_RING`` message posted into this ring, or a failed
    ``IOSQE_CQE_SKIP_SUCCESS`` request reaped raw (``completions()`` finds
    a standalone one's record among the skipped ones).
    """

    __slots__ = ("user_data", "res", "flags", "big", "request")

    def __init__(self, cqe: Any, request: Optional[Any]) -> None:
        self.user_data: int = cqe[0]
        self.res: int = cqe[1]
        self.flags: int = cqe[2]
        self.big: tuple = tuple(cqe[3:])
        if request.__class__ is tuple:  # the hot paths hold (opcode, target, keep)
            request = Request(*request)
        self.request = request if isinstance(request, Request) else None

    @property
    def opcode(self) -> Optional[int]:
        return None if self.request is None else self.request.opcode

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
        what = req.name if req is not None else f"request {self.user_data}"
        return kernel_error(-self.res, what, None if req is None else req.target)

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
