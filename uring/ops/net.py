"""Socket operations: socket, bind, listen, accept, connect, send, recv,
their message and zero-copy forms, and shutdown.

A socket is an ``int`` fd or anything with ``fileno()`` (a
``socket.socket``), or with ``fixed=True`` a slot of the registered file
table.  Addresses are Python's: ``(host, port)`` for ``AF_INET``,
``(host, port[, flowinfo, scope_id])`` for ``AF_INET6`` (numeric hosts
only: a prep does no name lookup), and a path (``str``, ``bytes`` or
``os.PathLike``; a leading NUL for the abstract namespace) for ``AF_UNIX``.
They become a ``sockaddr_in``/``sockaddr_in6``/``sockaddr_un`` built here
and held by the request: CONNECT, BIND and a SEND's destination are copied
in when the kernel prepares the request, but a ``msghdr`` and everything it
points at (iovecs, name, control data) are read, and for a receive written,
when the request is issued, which may be much later on an io-wq worker.

The SQE layouts follow the kernel's ``io_uring/net.c`` prep functions
(liburing's ``io_uring_prep_*`` fill the same fields): the send/recv
flags (``IORING_RECVSEND_*``, ``IORING_ACCEPT_*``) go in ``ioprio``, the
``MSG_*`` flags in ``msg_flags``, an address length in ``addr2`` (CONNECT,
BIND) or in ``addr_len`` next to the address in ``addr2`` (SEND's
destination), and a buffer group in ``buf_group`` with
``IOSQE_BUFFER_SELECT``.

Not here: ``IORING_OP_RECV_ZC`` (zero-copy receive needs a NIC with header
split and a registered ``zcrx`` interface queue).
"""

from __future__ import annotations

import ctypes
import os
import socket as _socket
import struct
import sys
from typing import Any, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .. import abi
from ..buffers import BYTES_OFFSET, IovecArray, PinnedBuffer
from ..ring import op_name
from .base import OpsBase
from .files import _iovec_array

__all__ = [
    "SOCKADDR_STORAGE_SIZE", "NetOps", "RecvmsgOut", "cmsghdr", "decode_sockaddr",
    "make_sockaddr", "msghdr", "parse_recvmsg_out", "sockaddr_in", "sockaddr_in6",
    "sockaddr_storage", "sockaddr_un",
]

#: An address as Python's ``socket`` module spells it.
Address = Union[Tuple[Any, ...], str, bytes, "os.PathLike[Any]"]
#: ``(level, type, data)``, as ``socket.sendmsg``/``recvmsg`` take and give.
AncData = Tuple[int, int, bytes]

_FILE_INDEX_ALLOC = int(abi.IORING_FILE_INDEX_ALLOC)
_BUFFER_SELECT = int(abi.IOSQE_BUFFER_SELECT)
_SKIP_SUCCESS = int(abi.IOSQE_CQE_SKIP_SUCCESS)
_POLL_FIRST = int(abi.IORING_RECVSEND_POLL_FIRST)
_RECV_MULTISHOT = int(abi.IORING_RECV_MULTISHOT)
_FIXED_BUF = int(abi.IORING_RECVSEND_FIXED_BUF)
_REPORT_USAGE = int(abi.IORING_SEND_ZC_REPORT_USAGE)
_BUNDLE = int(abi.IORING_RECVSEND_BUNDLE)
_VECTORIZED = int(abi.IORING_SEND_VECTORIZED)
_SOCK_CLOEXEC = int(getattr(_socket, "SOCK_CLOEXEC", 0o2000000))
_SOCK_NONBLOCK = int(getattr(_socket, "SOCK_NONBLOCK", 0o4000))
_AF_UNIX = int(_socket.AF_UNIX)
_AF_INET = int(_socket.AF_INET)
_AF_INET6 = int(_socket.AF_INET6)
_INT_MAX = 0x7FFFFFFF
_OP_SEND = int(abi.IORING_OP_SEND)
_OP_RECV = int(abi.IORING_OP_RECV)

# -- socket addresses (include/uapi/linux/in.h, in6.h, un.h, socket.h) --------

_u8, _u16, _u32, _u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class sockaddr_in(ctypes.Structure):
    """``struct sockaddr_in`` (16 bytes); port and address in network order."""

    _fields_ = [("sin_family", _u16), ("sin_port", _u8 * 2), ("sin_addr", _u8 * 4),
                ("sin_zero", _u8 * 8)]


class sockaddr_in6(ctypes.Structure):
    """``struct sockaddr_in6`` (28 bytes); port, flow info and address in
    network order, ``sin6_scope_id`` in host order."""

    _fields_ = [("sin6_family", _u16), ("sin6_port", _u8 * 2), ("sin6_flowinfo", _u8 * 4),
                ("sin6_addr", _u8 * 16), ("sin6_scope_id", _u32)]


class sockaddr_un(ctypes.Structure):
    """``struct sockaddr_un`` (110 bytes): a path, NUL-terminated unless
    the length says otherwise (abstract names start with a NUL)."""

    _fields_ = [("sun_family", _u16), ("sun_path", _u8 * 108)]


class sockaddr_storage(ctypes.Structure):
    """``struct sockaddr_storage`` (128 bytes, 8-aligned): room for any
    address the kernel writes back (ACCEPT, RECVMSG)."""

    _fields_ = [("ss_family", _u16), ("__ss_padding", _u8 * 118), ("__ss_align", _u64)]


class msghdr(ctypes.Structure):
    """``struct msghdr`` as user space passes it to ``sendmsg``/``recvmsg``."""

    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", _u32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class cmsghdr(ctypes.Structure):
    """``struct cmsghdr``: the header of one control message."""

    _fields_ = [("cmsg_len", ctypes.c_size_t), ("cmsg_level", ctypes.c_int),
                ("cmsg_type", ctypes.c_int)]


#: ``sizeof(struct sockaddr_storage)``: the most any address takes.
SOCKADDR_STORAGE_SIZE = ctypes.sizeof(sockaddr_storage)
_SUN_PATH_OFFSET = sockaddr_un.sun_path.offset
_SUN_PATH_MAX = 108
_CMSG_HDR = struct.Struct("@Nii")  # cmsg_len, cmsg_level, cmsg_type
_ALIGN = ctypes.sizeof(ctypes.c_size_t)
_RECVMSG_OUT = struct.Struct("@IIII")  # struct io_uring_recvmsg_out
_RECVMSG_OUT_SIZE = ctypes.sizeof(abi.io_uring_recvmsg_out)


def _cmsg_align(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def _ip_bytes(family: int, host: Any) -> bytes:
    if not isinstance(host, str):
        raise TypeError(f"a host must be a str, not {type(host).__name__}")
    if host == "":
        host = "0.0.0.0" if family == _AF_INET else "::"
    elif host == "<broadcast>" and family == _AF_INET:
        host = "255.255.255.255"
    try:
        return _socket.inet_pton(family, host)
    except OSError:
        kind = "IPv4" if family == _AF_INET else "IPv6"
        raise ValueError(
            f"{host!r} is not a numeric {kind} address (a prep does no name lookup: "
            "resolve it first with socket.getaddrinfo)"
        ) from None


def _port(port: Any) -> bytes:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"a port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be 0-65535, got {port}")
    return port.to_bytes(2, "big")


def _family_of(address: Any) -> int:
    if isinstance(address, (str, bytes, os.PathLike)):
        return _AF_UNIX
    if isinstance(address, tuple) and address:
        if len(address) == 4 or (isinstance(address[0], str) and ":" in address[0]):
            return _AF_INET6
        return _AF_INET
    raise TypeError(f"not a socket address: {address!r}")


def make_sockaddr(address: Any, family: Optional[int] = None) -> Tuple[ctypes.Structure, int]:
    """A ``sockaddr`` structure for *address* and its length, as the
    kernel takes them.  *family* (``AF_INET``/``AF_INET6``/``AF_UNIX``)
    is guessed from the address when not given: a path is ``AF_UNIX``, a
    4-tuple or a host with a ``:`` is ``AF_INET6``."""
    if family is None:
        family = _family_of(address)
    family = int(family)
    if family == _AF_INET:
        if not isinstance(address, tuple) or len(address) != 2:
            raise TypeError(f"an AF_INET address is (host, port), got {address!r}")
        sin = sockaddr_in()
        sin.sin_family = _AF_INET
        ctypes.memmove(sin.sin_port, _port(address[1]), 2)
        ctypes.memmove(sin.sin_addr, _ip_bytes(_AF_INET, address[0]), 4)
        return sin, ctypes.sizeof(sin)
    if family == _AF_INET6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise TypeError(
                f"an AF_INET6 address is (host, port[, flowinfo, scope_id]), got {address!r}")
        host, port = address[0], address[1]
        flowinfo = address[2] if len(address) > 2 else 0
        scope_id = address[3] if len(address) > 3 else 0
        if isinstance(host, str) and "%" in host:  # "fe80::1%eth0"
            host, _, scope = host.partition("%")
            if not scope_id:
                scope_id = int(scope) if scope.isdigit() else _socket.if_nametoindex(scope)
        if not 0 <= flowinfo <= 0xFFFFF:
            raise ValueError(f"flowinfo must be 0-1048575, got {flowinfo}")
        sin6 = sockaddr_in6()
        sin6.sin6_family = _AF_INET6
        ctypes.memmove(sin6.sin6_port, _port(port), 2)
        ctypes.memmove(sin6.sin6_flowinfo, flowinfo.to_bytes(4, "big"), 4)
        ctypes.memmove(sin6.sin6_addr, _ip_bytes(_AF_INET6, host), 16)
        sin6.sin6_scope_id = scope_id
        return sin6, ctypes.sizeof(sin6)
    if family == _AF_UNIX:
        if not isinstance(address, (str, bytes, bytearray, os.PathLike)):
            raise TypeError(f"an AF_UNIX address is a path, got {address!r}")
        raw = bytes(address) if isinstance(address, bytearray) else os.fsencode(address)
        abstract = raw[:1] == b"\0"
        if len(raw) > _SUN_PATH_MAX or (not abstract and len(raw) == _SUN_PATH_MAX):
            raise ValueError(f"AF_UNIX path too long ({len(raw)} bytes, at most 107)")
        if not abstract and b"\0" in raw:
            raise ValueError(f"embedded NUL in AF_UNIX path {address!r}")
        sun = sockaddr_un()
        sun.sun_family = _AF_UNIX
        ctypes.memmove(sun.sun_path, raw, len(raw))
        # As CPython does: the length covers the path without its NUL
        # (the structure is zero-filled, so the path is terminated anyway).
        return sun, _SUN_PATH_OFFSET + len(raw)
    raise ValueError(f"address family {family} is not supported here "
                     "(AF_INET, AF_INET6 and AF_UNIX are)")


def decode_sockaddr(raw: bytes) -> Any:
    """The Python address for the first ``len(raw)`` bytes of a
    ``sockaddr`` the kernel wrote (``None`` when empty, as
    ``socket.recvfrom`` gives for an unnamed peer; ``(family, bytes)`` for
    a family not decoded here)."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    if family == _AF_INET and len(raw) >= 8:
        return (_socket.inet_ntop(_AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big"))
    if family == _AF_INET6 and len(raw) >= 24:
        scope = int.from_bytes(raw[24:28], sys.byteorder) if len(raw) >= 28 else 0
        return (_socket.inet_ntop(_AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big"),
                int.from_bytes(raw[4:8], "big"), scope)
    if family == _AF_UNIX:
        path = raw[_SUN_PATH_OFFSET:]
        if path[:1] == b"\0":
            return path  # abstract: bytes, NUL first, as Python gives it
        return os.fsdecode(path.split(b"\0", 1)[0])
    return (family, bytes(raw[2:]))


def _control(ancdata: Iterable[Any]) -> Tuple[Optional[ctypes.Array], int]:
    """A control buffer holding *ancdata* as ``cmsghdr`` records (each
    padded to ``CMSG_SPACE``), and its length."""
    parts: List[bytes] = []
    for item in ancdata:
        try:
            level, kind, data = item
        except (TypeError, ValueError):
            raise TypeError(f"ancillary data items are (level, type, data), got {item!r}") from None
        data = bytes(memoryview(data).cast("B"))
        length = _CMSG_HDR.size + len(data)
        record = _CMSG_HDR.pack(length, level, kind) + data
        parts.append(record.ljust(_cmsg_align(length), b"\0"))
    if not parts:
        return None, 0
    raw = b"".join(parts)
    buf = (ctypes.c_uint8 * len(raw)).from_buffer_copy(raw)
    return buf, len(raw)


def _parse_control(raw: bytes) -> List[AncData]:
    """``cmsghdr`` records as ``(level, type, data)``, as ``socket.recvmsg``
    lists them (a record cut short by ``MSG_CTRUNC`` keeps what is there)."""
    out: List[AncData] = []
    at, hdr = 0, _CMSG_HDR.size
    while at + hdr <= len(raw):
        length, level, kind = _CMSG_HDR.unpack_from(raw, at)
        if length < hdr:
            break
        out.append((level, kind, bytes(raw[at + hdr: min(at + length, len(raw))])))
        at += _cmsg_align(length)
    return out


class RecvmsgOut(NamedTuple):
    """One multishot ``RECVMSG`` buffer, taken apart (``parse_recvmsg_out``)."""

    #: The sender's address (``decode_sockaddr``), ``None`` without one; the
    #: raw bytes when it did not fit the reserved name space.
    address: Any
    #: ``(level, type, data)`` control messages.
    ancdata: List[AncData]
    #: The payload (``flags & MSG_TRUNC``: the datagram was longer).
    payload: bytes
    #: ``msg_flags`` of this receive (``MSG_TRUNC``, ``MSG_CTRUNC``, ...).
    flags: int


def parse_recvmsg_out(buffer: Any, namelen: int = SOCKADDR_STORAGE_SIZE,
                      controllen: int = 0) -> RecvmsgOut:
    """Take apart what a multishot ``IORING_OP_RECVMSG`` wrote into a
    provided buffer: a ``struct io_uring_recvmsg_out`` header, then
    *namelen* bytes reserved for the source address, *controllen* bytes
    for control messages (both as given to ``prep_recvmsg``: ``namelen``
    and ``ancbufsize``), then the payload.  *buffer* is the ``res`` bytes
    the completion used (``BufferRing.take``).  Raises ``ValueError`` when
    it is too short to hold the header and reserved parts (liburing's
    ``io_uring_recvmsg_validate``)."""
    view = memoryview(buffer).cast("B")
    header = _RECVMSG_OUT_SIZE + namelen + controllen
    if namelen < 0 or controllen < 0 or len(view) < header:
        raise ValueError(f"a {len(view)}-byte buffer cannot hold a recvmsg header with "
                         f"namelen {namelen} and controllen {controllen} ({header} bytes)")
    out_namelen, out_controllen, _payloadlen, flags = _RECVMSG_OUT.unpack_from(view, 0)
    name = bytes(view[_RECVMSG_OUT_SIZE: _RECVMSG_OUT_SIZE + min(out_namelen, namelen)])
    address: Any = decode_sockaddr(name) if out_namelen <= namelen else name
    start = _RECVMSG_OUT_SIZE + namelen
    control = bytes(view[start: start + min(out_controllen, controllen)])
    return RecvmsgOut(address, _parse_control(control), bytes(view[header:]), flags)


class _AddressOut:
    """A ``sockaddr_storage`` and the ``socklen_t`` the kernel fills in
    (ACCEPT): both stay alive with the request."""

    __slots__ = ("storage", "length")

    def __init__(self) -> None:
        self.storage = sockaddr_storage()
        self.length = ctypes.c_uint32(SOCKADDR_STORAGE_SIZE)

    def address(self) -> Any:
        n = min(int(self.length.value), SOCKADDR_STORAGE_SIZE)
        return decode_sockaddr(ctypes.string_at(ctypes.addressof(self.storage), n))


class _Msg:
    """A ``msghdr`` with everything it points at: the iovec array (and its
    pinned buffers), the name and the control buffer."""

    __slots__ = ("hdr", "iov", "name", "control", "group")

    def __init__(self, iov: Optional[IovecArray], name: Any, namelen: int,
                 control: Any, controllen: int) -> None:
        hdr = msghdr()
        if name is not None:
            hdr.msg_name = ctypes.addressof(name)
            hdr.msg_namelen = namelen
        if iov is not None and iov.count:
            hdr.msg_iov = iov.address
            hdr.msg_iovlen = iov.count
        if control is not None:
            hdr.msg_control = ctypes.addressof(control)
            hdr.msg_controllen = controllen
        self.hdr, self.iov, self.name, self.control = hdr, iov, name, control
        self.group: Any = None

    def received(self, res: int) -> Tuple[int, List[AncData], int, Any]:
        """After a RECVMSG: ``(nbytes, ancdata, msg_flags, address)``, as
        ``socket.recvmsg_into`` returns them (the kernel wrote the lengths
        and flags back into the ``msghdr``)."""
        hdr = self.hdr
        address = None
        if self.name is not None:
            n = min(int(hdr.msg_namelen), ctypes.sizeof(self.name))
            address = decode_sockaddr(ctypes.string_at(ctypes.addressof(self.name), n))
        ancdata: List[AncData] = []
        if self.control is not None and hdr.msg_controllen:
            n = min(int(hdr.msg_controllen), ctypes.sizeof(self.control))
            ancdata = _parse_control(ctypes.string_at(ctypes.addressof(self.control), n))
        return res, ancdata, int(hdr.msg_flags), address


class NetOps(OpsBase):
    """Operations on sockets (an ``int`` fd or a ``socket.socket``)."""

    # -- operands ---------------------------------------------------------------

    def _sock(self, sock: Any, fixed: bool) -> Tuple[int, Optional[int]]:
        """The fd (or registered slot) and, when known, the address family."""
        family = None if fixed else getattr(sock, "family", None)
        return self._file(sock, fixed), (None if family is None else int(family))

    @staticmethod
    def _length(op: str, length: Optional[int], nbytes: int) -> int:
        if length is None:
            length = nbytes
        elif not 0 <= length <= nbytes:
            raise ValueError(f"{op}: length {length} is outside the {nbytes}-byte buffer")
        if length > _INT_MAX:
            raise ValueError(f"{op}: {length} bytes is more than one request moves (2**31-1)")
        return length

    # -- setting up -------------------------------------------------------------

    def prep_socket(self, domain: int, type: int, protocol: int = 0,
                    user_data: Optional[int] = None, *, flags: int = 0,
                    file_index: Optional[int] = None) -> int:
        """``IORING_OP_SOCKET``: ``socket(domain, type, protocol)``; ``res``
        is the new fd (*type* may carry ``SOCK_NONBLOCK``/``SOCK_CLOEXEC``,
        as in C: no ``SOCK_CLOEXEC`` unless asked for).

        With *file_index* (a registered-file slot, or
        ``IORING_FILE_INDEX_ALLOC`` for any free one) the socket becomes a
        direct descriptor: ``res`` is 0, or the slot the kernel picked.
        The SQE carries domain in ``fd``, type in ``off``, protocol in ``len``."""
        op = "IORING_OP_SOCKET"
        if type & ~0xF & ~(_SOCK_CLOEXEC | _SOCK_NONBLOCK):
            raise ValueError(f"{op}: unknown flags in type {type:#x}")
        slot = self._direct_slot(op, file_index, cloexec="SOCK_CLOEXEC" if type & _SOCK_CLOEXEC else "")
        return self._op(abi.IORING_OP_SOCKET, fd=int(domain), off=int(type), len=int(protocol),
                        file_index=slot, user_data=user_data, flags=flags,
                        target=f"socket({int(domain)}, {int(type)}, {int(protocol)})")

    def prep_bind(self, sock: Any, address: Address, user_data: Optional[int] = None, *,
                  flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_BIND`` (6.11+): ``bind(sock, address)``; ``res`` 0.
        The SQE points ``addr`` at the ``sockaddr`` and carries its length
        in ``addr2``."""
        fd, family = self._sock(sock, fixed)
        sa, salen = make_sockaddr(address, family)
        return self._op(abi.IORING_OP_BIND, fd=fd, addr=ctypes.addressof(sa), off=salen,
                        user_data=user_data, flags=flags, fixed=fixed, target=address, keep=sa)

    def prep_listen(self, sock: Any, backlog: int, user_data: Optional[int] = None, *,
                    flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_LISTEN`` (6.11+): ``listen(sock, backlog)`` (the
        backlog in ``len``); ``res`` 0."""
        if not 0 <= backlog <= _INT_MAX:
            raise ValueError(f"IORING_OP_LISTEN: backlog must be 0..2**31-1, got {backlog}")
        fd = self._file(sock, fixed)
        return self._op(abi.IORING_OP_LISTEN, fd=fd, len=backlog, user_data=user_data,
                        flags=flags, fixed=fixed)

    def prep_accept(self, sock: Any, user_data: Optional[int] = None, *, flags: int = 0,
                    fixed: bool = False, multishot: bool = False,
                    file_index: Optional[int] = None, accept_flags: Optional[int] = None,
                    want_address: Optional[bool] = None, dontwait: bool = False,
                    poll_first: bool = False) -> int:
        """``IORING_OP_ACCEPT``: ``accept4(sock, ..., accept_flags)``; ``res``
        is the new fd (``SOCK_CLOEXEC`` by default, as Python's sockets are).

        *want_address* (the default for a single accept): the kernel writes
        the peer's address into a ``sockaddr_storage`` and its length into a
        ``socklen_t`` (``addr``/``addr2``), both held by the request;
        ``peer_address(completion)`` decodes them.  *multishot*
        (``IORING_ACCEPT_MULTISHOT`` in ``ioprio``): one SQE accepts every
        connection, one CQE each with ``IORING_CQE_F_MORE`` until it ends
        or is cancelled; it takes no address buffer (every connection would
        overwrite the same one; use ``getpeername``).  *file_index*: the
        connection becomes a direct descriptor (slot, or
        ``IORING_FILE_INDEX_ALLOC``, the only choice with *multishot*;
        ``res`` is the slot picked).  *dontwait* (``IORING_ACCEPT_DONTWAIT``):
        ``-EAGAIN`` instead of waiting for a connection; *poll_first*
        (``IORING_ACCEPT_POLL_FIRST``): wait for one before trying."""
        op = "IORING_OP_ACCEPT"
        if accept_flags is None:
            accept_flags = 0 if file_index is not None else _SOCK_CLOEXEC
        if accept_flags & ~(_SOCK_CLOEXEC | _SOCK_NONBLOCK):
            raise ValueError(f"{op}: accept_flags may only hold SOCK_CLOEXEC | SOCK_NONBLOCK")
        slot = self._direct_slot(op, file_index,
                                 cloexec="SOCK_CLOEXEC" if accept_flags & _SOCK_CLOEXEC else "")
        if multishot and slot not in (0, _FILE_INDEX_ALLOC):
            raise ValueError(f"{op}: a multishot accept into the file table takes "
                             "file_index=IORING_FILE_INDEX_ALLOC, not a fixed slot")
        if want_address is None:
            want_address = not multishot
        elif want_address and multishot:
            raise ValueError(f"{op}: a multishot accept cannot report peer addresses "
                             "(each connection would overwrite the same buffer)")
        ioprio = ((int(abi.IORING_ACCEPT_MULTISHOT) if multishot else 0)
                  | (int(abi.IORING_ACCEPT_DONTWAIT) if dontwait else 0)
                  | (int(abi.IORING_ACCEPT_POLL_FIRST) if poll_first else 0))
        fd = self._file(sock, fixed)
        out = _AddressOut() if want_address else None
        return self._op(abi.IORING_OP_ACCEPT, fd=fd,
                        addr=0 if out is None else ctypes.addressof(out.storage),
                        off=0 if out is None else ctypes.addressof(out.length),
                        op_flags=accept_flags, ioprio=ioprio, file_index=slot,
                        user_data=user_data, flags=flags, fixed=fixed, keep=out)

    @staticmethod
    def peer_address(completion: Any) -> Any:
        """The peer address a single-shot ``prep_accept`` (with
        *want_address*) received, from its ``Completion``; ``None`` when the
        request asked for none or failed."""
        request = getattr(completion, "request", None)
        keep = getattr(request, "keep", None)
        if not isinstance(keep, _AddressOut) or completion.res < 0:
            return None
        return keep.address()

    def prep_connect(self, sock: Any, address: Address, user_data: Optional[int] = None, *,
                     flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_CONNECT``: ``connect(sock, address)``; ``res`` 0.  The
        SQE points ``addr`` at the ``sockaddr``, its length in ``addr2``."""
        fd, family = self._sock(sock, fixed)
        sa, salen = make_sockaddr(address, family)
        return self._op(abi.IORING_OP_CONNECT, fd=fd, addr=ctypes.addressof(sa), off=salen,
                        user_data=user_data, flags=flags, fixed=fixed, target=address, keep=sa)

    def prep_shutdown(self, sock: Any, how: int, user_data: Optional[int] = None, *,
                      flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_SHUTDOWN``: ``shutdown(sock, how)`` (``SHUT_RD``,
        ``SHUT_WR``, ``SHUT_RDWR``, in ``len``); ``res`` 0."""
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise ValueError(f"IORING_OP_SHUTDOWN: how must be SHUT_RD, SHUT_WR or "
                             f"SHUT_RDWR, got {how!r}")
        fd = self._file(sock, fixed)
        return self._op(abi.IORING_OP_SHUTDOWN, fd=fd, len=int(how), user_data=user_data,
                        flags=flags, fixed=fixed)

    # -- send and receive ---------------------------------------------------------

    def _plain(self, opcode: int, fd: int, keep: Any, addr: int, nbytes: int,
               user_data: Optional[int], msg_flags: int, flags: int) -> int:
        """A plain SEND or RECV: ``fd``, ``addr``, ``len``, ``msg_flags``
        and nothing else, the shape of a read, so it goes through the read
        path's one-call SQE fill (``OpsBase._rw``), probe-checked."""
        ops = self._supported_ops
        if ops is None or opcode not in ops:
            self._require(opcode)
        if nbytes > _INT_MAX:
            raise ValueError(f"{op_name(opcode)}: {nbytes} bytes is more than one request "
                             "moves (2**31-1)")
        return self.prep_rw(opcode, fd, addr, nbytes, 0, user_data, flags, msg_flags, keep)

    def _send_source(self, op: str, data: Any, length: Optional[int]) -> Tuple[Any, int, int, int]:
        """What a SEND/SEND_ZC points at: (kept object, addr, len, ioprio bit).
        A list or tuple of buffers is sent as one (``IORING_SEND_VECTORIZED``:
        ``addr`` is an ``iovec[]``, ``len`` its count)."""
        if isinstance(data, (list, tuple, IovecArray)):
            if length is not None:
                raise ValueError(f"{op}: length applies to one buffer, not a list of them")
            # an IovecArray checked live (a released buffer's iovec may point
            # at freed memory), or one made of the list: raised before any SQE
            iov = _iovec_array(op, data, False)
            return iov, iov.address, iov.count, _VECTORIZED
        buf = self._readable(data)
        return buf, buf.address, self._length(op, length, buf.nbytes), 0

    def _destination(self, to: Optional[Address], family: Optional[int]) -> Tuple[Any, int, int]:
        """A SEND's destination: the ``sockaddr``, its address (``addr2``)
        and its length (``addr_len``, the low half of the ``file_index`` word)."""
        if to is None:
            return None, 0, 0
        sa, salen = make_sockaddr(to, family)
        return sa, ctypes.addressof(sa), salen

    def prep_send(self, sock: Any, data: Any, user_data: Optional[int] = None, *,
                  msg_flags: int = 0, to: Optional[Address] = None, flags: int = 0,
                  fixed: bool = False, length: Optional[int] = None,
                  buf_group: Optional[int] = None, bundle: bool = False,
                  poll_first: bool = False) -> int:
        """``IORING_OP_SEND``: ``send(sock, data, msg_flags)`` (the kernel adds
        ``MSG_NOSIGNAL``), or ``sendto`` with *to* (the ``sockaddr`` in
        ``addr2``, its length in ``addr_len``); ``res`` is the byte count.

        *data*: a bytes-like object (the first *length* bytes), or a list of
        them sent as one (``IORING_SEND_VECTORIZED``).  With *buf_group*
        (*data* None) the kernel sends from the next provided buffer of the
        group (up to *length* bytes; 0/None: all of it), and with *bundle*
        (``IORING_RECVSEND_BUNDLE``) from as many of the group's buffers as
        are ready, in ring order; the completion names the first buffer.
        *poll_first*: ``IORING_RECVSEND_POLL_FIRST``."""
        if (to is None and buf_group is None and length is None and not bundle and not poll_first
                and sock.__class__ is int and sock >= 0 and not fixed
                and data.__class__ in (bytes, bytearray, memoryview, PinnedBuffer)):
            # The plain send: a read/write-shaped SQE (fd, addr, len,
            # msg_flags), filled by the same one-call path as a read.
            if data.__class__ is bytes:
                # bytes never move: holding the object is the pin.
                return self._plain(_OP_SEND, sock, data, id(data) + BYTES_OFFSET, len(data),
                                   user_data, msg_flags, flags)
            buf = self._readable(data)
            return self._plain(_OP_SEND, sock, buf, buf.address, buf.nbytes, user_data,
                               msg_flags, flags)
        op = "IORING_OP_SEND"
        fd, family = self._sock(sock, fixed)
        ioprio = _POLL_FIRST if poll_first else 0
        if buf_group is not None:
            if data is not None:
                raise ValueError(f"{op}: pass data=None with buf_group (the kernel picks "
                                 "the buffer)")
            if length is not None and not 0 <= length <= _INT_MAX:
                raise ValueError(f"{op}: length must be 0..2**31-1, got {length}")
            source: Any = self._group(op, buf_group)
            addr, nbytes = 0, length or 0
            flags |= _BUFFER_SELECT
            if bundle:
                ioprio |= _BUNDLE
        else:
            if bundle:
                raise ValueError(f"{op}: bundle needs buf_group")
            if data is None:
                raise TypeError(f"{op}: data is None and no buf_group was given")
            source, addr, nbytes, vec = self._send_source(op, data, length)
            ioprio |= vec
        sa, sa_addr, salen = self._destination(to, family)
        return self._op(abi.IORING_OP_SEND, fd=fd, addr=addr, len=nbytes, op_flags=msg_flags,
                        off=sa_addr, file_index=salen, ioprio=ioprio,
                        buf_index=0 if buf_group is None else buf_group,
                        user_data=user_data, flags=flags, fixed=fixed,
                        target=fd if to is None else to,
                        keep=source if sa is None else (source, sa))

    def prep_send_zc(self, sock: Any, data: Any, user_data: Optional[int] = None, *,
                     msg_flags: int = 0, to: Optional[Address] = None, flags: int = 0,
                     fixed: bool = False, length: Optional[int] = None,
                     buf_index: Optional[int] = None, buf_offset: int = 0,
                     report_usage: bool = False, poll_first: bool = False) -> int:
        """``IORING_OP_SEND_ZC``: a zero-copy send.  Two CQEs: the result
        (byte count, with ``IORING_CQE_F_MORE``), then the notification
        (``IORING_CQE_F_NOTIF``, ``res`` 0) once the kernel no longer reads
        the buffer; the request holds *data* until that second CQE.

        *data*, *length* and *to* as for ``prep_send``.  With *buf_index*
        (*data* None: ``IORING_RECVSEND_FIXED_BUF``) the bytes come from
        registered buffer *buf_index*, from *buf_offset*.  *report_usage*
        (``IORING_SEND_ZC_REPORT_USAGE``): the notification's ``res`` has
        ``IORING_NOTIF_USAGE_ZC_COPIED`` (bit 31) set when the kernel copied
        after all; read it as ``completion.res & 0xFFFFFFFF`` (as an ``s32``
        it looks negative, so ``Completion.result()`` would raise)."""
        op = "IORING_OP_SEND_ZC"
        if flags & _SKIP_SUCCESS:
            raise ValueError(f"{op}: the kernel refuses IOSQE_CQE_SKIP_SUCCESS on zero-copy sends")
        fd, family = self._sock(sock, fixed)
        ioprio = (_POLL_FIRST if poll_first else 0) | (_REPORT_USAGE if report_usage else 0)
        index = 0
        if buf_index is not None:
            if data is not None:
                raise ValueError(f"{op}: pass data=None with buf_index (the registered buffer "
                                 "is the data)")
            source, addr, nbytes = self._registered(op, buf_index, buf_offset, length)
            ioprio |= _FIXED_BUF
            index = buf_index
        else:
            source, addr, nbytes, vec = self._send_source(op, data, length)
            ioprio |= vec
        sa, sa_addr, salen = self._destination(to, family)
        return self._op(abi.IORING_OP_SEND_ZC, fd=fd, addr=addr, len=nbytes, op_flags=msg_flags,
                        off=sa_addr, file_index=salen, ioprio=ioprio, buf_index=index,
                        user_data=user_data, flags=flags, fixed=fixed,
                        target=fd if to is None else to,
                        keep=source if sa is None else (source, sa))

    def _registered(self, op: str, buf_index: int, buf_offset: int,
                    length: Optional[int]) -> Tuple[Any, int, int]:
        """(the buffer, address, length) within registered buffer *buf_index*."""
        buf = self._registered_buffer(op, buf_index)
        if not 0 <= buf_offset <= buf.nbytes:
            raise ValueError(f"{op}: buf_offset {buf_offset} is outside registered buffer "
                             f"{buf_index} ({buf.nbytes} bytes)")
        nbytes = self._length(op, length, buf.nbytes - buf_offset)
        return buf, buf.address + buf_offset, nbytes

    def prep_recv(self, sock: Any, buf: Any = None, user_data: Optional[int] = None, *,
                  msg_flags: int = 0, flags: int = 0, fixed: bool = False,
                  length: Optional[int] = None, buf_group: Optional[int] = None,
                  multishot: bool = False, bundle: bool = False,
                  poll_first: bool = False) -> int:
        """``IORING_OP_RECV``: ``recv(sock, buf, msg_flags)``; ``res`` is the
        byte count (0: the peer shut down).

        With *buf_group* (*buf* None) the kernel takes the next provided
        buffer of the group when data arrives (``IORING_CQE_F_BUFFER``; up
        to *length* bytes, 0/None: the whole buffer; ``BufferRing.take``).
        *multishot* (``IORING_RECV_MULTISHOT``, needs *buf_group*, no
        *length*): one CQE per receive, with ``IORING_CQE_F_MORE``, until
        EOF, an error, or ``-ENOBUFS`` when the group runs dry (data stays
        in the socket: recycle buffers and prepare it again).  *bundle*
        (``IORING_RECVSEND_BUNDLE``, with *buf_group*): one CQE may fill
        several buffers, consecutive in ring order from the one it names."""
        if (buf is not None and buf_group is None and length is None and not multishot
                and not bundle and not poll_first and not fixed and sock.__class__ is int
                and sock >= 0):
            # The plain receive: read/write-shaped, as for prep_send.
            into = self._writable(buf)
            return self._plain(_OP_RECV, sock, into, into.address, into.nbytes, user_data,
                               msg_flags, flags)
        op = "IORING_OP_RECV"
        fd = self._file(sock, fixed)
        ioprio = ((_POLL_FIRST if poll_first else 0) | (_RECV_MULTISHOT if multishot else 0)
                  | (_BUNDLE if bundle else 0))
        if buf_group is not None:
            if buf is not None:
                raise ValueError(f"{op}: pass buf=None with buf_group (the kernel picks the "
                                 "buffer)")
            if multishot and length:
                raise ValueError(f"{op}: a multishot receive takes whole buffers (no length)")
            if length is not None and not 0 <= length <= _INT_MAX:
                raise ValueError(f"{op}: length must be 0..2**31-1, got {length}")
            if multishot and msg_flags & _socket.MSG_WAITALL:
                raise ValueError(f"{op}: MSG_WAITALL cannot be combined with multishot")
            keep: Any = self._group(op, buf_group)
            addr, nbytes = 0, length or 0
            flags |= _BUFFER_SELECT
        else:
            if multishot or bundle:
                raise ValueError(f"{op}: multishot and bundle need buf_group")
            if buf is None:
                raise TypeError(f"{op}: buf is None and no buf_group was given")
            keep = self._writable(buf)
            addr, nbytes = keep.address, self._length(op, length, keep.nbytes)
        return self._op(abi.IORING_OP_RECV, fd=fd, addr=addr, len=nbytes, op_flags=msg_flags,
                        ioprio=ioprio, buf_index=0 if buf_group is None else buf_group,
                        user_data=user_data, flags=flags, fixed=fixed, keep=keep)

    # -- messages -------------------------------------------------------------------

    def _sendmsg(self, opcode: int, op: str, sock: Any, buffers: Sequence[Any],
                 ancdata: Iterable[Any], address: Any, user_data: Optional[int],
                 msg_flags: int, flags: int, fixed: bool, ioprio: int,
                 buf_index: Optional[int] = None) -> int:
        fd, family = self._sock(sock, fixed)
        if isinstance(buffers, (bytes, bytearray, memoryview, PinnedBuffer)):
            raise TypeError(f"{op}: buffers is a sequence of buffers (as for socket.sendmsg), "
                            "not one buffer")
        iov = _iovec_array(op, buffers, False)  # a released buffer refused, by op and iovec
        table = None
        if buf_index is not None:
            table = self._within_registered(op, buf_index, iov)
            ioprio |= _FIXED_BUF
        name, namelen = (None, 0) if address is None else make_sockaddr(address, family)
        control, controllen = _control(ancdata)
        msg = _Msg(iov, name, namelen, control, controllen)
        msg.group = table
        return self._op(opcode, fd=fd, addr=ctypes.addressof(msg.hdr), len=1,
                        op_flags=msg_flags, ioprio=ioprio, buf_index=buf_index or 0,
                        user_data=user_data, flags=flags, fixed=fixed,
                        target=fd if address is None else address, keep=msg)

    def _within_registered(self, op: str, buf_index: int, iov: IovecArray) -> Any:
        """Registered buffer *buf_index*, once every iovec of *iov* is found
        to lie inside it."""
        reg = self._registered_buffer(op, buf_index)
        for b in iov.buffers:
            if b.address < reg.address or b.address + b.nbytes > reg.address + reg.nbytes:
                raise ValueError(f"{op}: a buffer is not inside registered buffer {buf_index} "
                                 "(pass slices of it, e.g. memoryview(registered)[a:b])")
        return reg

    def prep_sendmsg(self, sock: Any, buffers: Sequence[Any], ancdata: Iterable[Any] = (),
                     address: Optional[Address] = None, user_data: Optional[int] = None, *,
                     msg_flags: int = 0, flags: int = 0, fixed: bool = False,
                     poll_first: bool = False) -> int:
        """``IORING_OP_SENDMSG``: ``socket.sendmsg(buffers, ancdata, msg_flags,
        address)``; ``res`` is the byte count.  The request holds the
        ``msghdr`` (``addr``), its iovec array, the buffers, the
        ``sockaddr`` and the control buffer (*ancdata*: ``(level, type,
        data)`` items, e.g. ``SCM_RIGHTS`` with an ``array('i', fds)``)."""
        return self._sendmsg(abi.IORING_OP_SENDMSG, "IORING_OP_SENDMSG", sock, buffers, ancdata,
                             address, user_data, msg_flags, flags, fixed,
                             _POLL_FIRST if poll_first else 0)

    def prep_sendmsg_zc(self, sock: Any, buffers: Sequence[Any], ancdata: Iterable[Any] = (),
                        address: Optional[Address] = None, user_data: Optional[int] = None, *,
                        msg_flags: int = 0, flags: int = 0, fixed: bool = False,
                        report_usage: bool = False, poll_first: bool = False,
                        buf_index: Optional[int] = None) -> int:
        """``IORING_OP_SENDMSG_ZC``: ``prep_sendmsg`` without copying the
        payload; two CQEs, as for ``prep_send_zc`` (result with
        ``IORING_CQE_F_MORE``, then ``IORING_CQE_F_NOTIF``), and everything
        is held until the second.  With *buf_index*
        (``IORING_RECVSEND_FIXED_BUF``, 6.15+) every buffer must be a slice
        of registered buffer *buf_index*: the kernel maps the iovecs through
        the registration instead of pinning user pages."""
        op = "IORING_OP_SENDMSG_ZC"
        if flags & _SKIP_SUCCESS:
            raise ValueError(f"{op}: the kernel refuses IOSQE_CQE_SKIP_SUCCESS on zero-copy sends")
        ioprio = (_POLL_FIRST if poll_first else 0) | (_REPORT_USAGE if report_usage else 0)
        return self._sendmsg(abi.IORING_OP_SENDMSG_ZC, op, sock, buffers, ancdata, address,
                             user_data, msg_flags, flags, fixed, ioprio, buf_index)

    def prep_recvmsg(self, sock: Any, buffers: Optional[Sequence[Any]] = None,
                     ancbufsize: int = 0, user_data: Optional[int] = None, *,
                     msg_flags: int = 0, flags: int = 0, fixed: bool = False,
                     buf_group: Optional[int] = None, multishot: bool = False,
                     namelen: int = SOCKADDR_STORAGE_SIZE, poll_first: bool = False) -> int:
        """``IORING_OP_RECVMSG``: ``socket.recvmsg_into(buffers, ancbufsize,
        msg_flags)``; ``Completion.result()`` gives ``(nbytes, ancdata,
        msg_flags, address)`` like it (the kernel writes the name, control
        data and their lengths back through the ``msghdr``, which the
        request holds with its iovecs, buffers, name and control buffer).

        With *buf_group* (*buffers* None) the payload goes into a provided
        buffer.  *multishot* (``IORING_RECV_MULTISHOT``, needs *buf_group*):
        one CQE per message, with ``IORING_CQE_F_MORE``; each buffer holds
        a ``struct io_uring_recvmsg_out``, *namelen* bytes for the source
        address, *ancbufsize* for control data, then the payload
        (``parse_recvmsg_out(data, namelen, ancbufsize)``); ``result()`` is
        then the number of bytes used in the buffer."""
        op = "IORING_OP_RECVMSG"
        fd = self._file(sock, fixed)
        if not 0 <= namelen <= SOCKADDR_STORAGE_SIZE:
            raise ValueError(f"{op}: namelen must be 0..{SOCKADDR_STORAGE_SIZE}, got {namelen}")
        if ancbufsize < 0 or ancbufsize > _INT_MAX:
            raise ValueError(f"{op}: ancbufsize must be 0..2**31-1, got {ancbufsize}")
        ioprio = (_POLL_FIRST if poll_first else 0) | (_RECV_MULTISHOT if multishot else 0)
        iov: Optional[IovecArray] = None
        group: Any = None
        if buf_group is not None:
            if buffers is not None:
                raise ValueError(f"{op}: pass buffers=None with buf_group (the kernel picks "
                                 "the buffer)")
            if multishot and msg_flags & _socket.MSG_WAITALL:
                raise ValueError(f"{op}: MSG_WAITALL cannot be combined with multishot")
            group = self._group(op, buf_group)
            flags |= _BUFFER_SELECT
        else:
            if multishot:
                raise ValueError(f"{op}: multishot needs buf_group")
            if buffers is None:
                raise TypeError(f"{op}: buffers is None and no buf_group was given")
            if isinstance(buffers, (bytes, bytearray, memoryview, PinnedBuffer)):
                raise TypeError(f"{op}: buffers is a sequence of buffers (as for "
                                "socket.recvmsg_into), not one buffer")
            # a released buffer refused by op and iovec (not as unwritable),
            # then every buffer writable
            iov = _iovec_array(op, buffers, True)
        name = sockaddr_storage() if namelen else None
        control = (ctypes.c_uint8 * ancbufsize)() if ancbufsize else None
        msg = _Msg(iov, name, namelen, control, ancbufsize)
        msg.group = group
        decode = None if multishot else msg.received
        return self._op(abi.IORING_OP_RECVMSG, fd=fd, addr=ctypes.addressof(msg.hdr), len=1,
                        op_flags=msg_flags, ioprio=ioprio,
                        buf_index=0 if buf_group is None else buf_group,
                        user_data=user_data, flags=flags, fixed=fixed, keep=msg, decode=decode)
