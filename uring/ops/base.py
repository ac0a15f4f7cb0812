"""What every ``prep_*`` shares: turning Python values into SQE fields
and the probe check.

Each ``prep_*`` checks its arguments, then reserves and fills one SQE
through the ring's one fill primitive, ``RingCore.prep_rw``, and returns its
``user_data`` (a fresh number when none is given).  Nothing is submitted
until ``submit()``/``wait()``.  The ring keeps a ``Request`` (opcode,
target, every object whose memory the SQE points at, an owner) under the
``user_data`` until the request's final CQE is reaped; ``completions()``
hands the pair back.  The op groups use ``RingCore``'s public methods only.
"""

from __future__ import annotations

import ctypes
import datetime
import os
from typing import Any, Callable, FrozenSet, Optional, Tuple, Union

from .. import abi
from ..buffers import PinnedBuffer, pin
from ..errors import FixedFile, UnsupportedOperation, check_int
from ..register import RegisterMixin, _fileno
from ..request import op_name

__all__ = ["AT_FDCWD", "OpsBase", "Seconds", "timespec"]

#: ``AT_FDCWD``: a ``dirfd`` meaning "relative to the current directory".
AT_FDCWD = -100

#: A duration: seconds (int/float) or a ``datetime.timedelta``.
Seconds = Union[int, float, datetime.timedelta]

_FIXED_FILE = int(abi.IOSQE_FIXED_FILE)
_FILE_INDEX_ALLOC = int(abi.IORING_FILE_INDEX_ALLOC)

# Opcodes every kernel this package runs on has (5.6+), and that the hot
# paths use: not checked against the probe.
_BASIC_OPS = frozenset(int(op) for op in (
    abi.IORING_OP_NOP, abi.IORING_OP_READV, abi.IORING_OP_WRITEV, abi.IORING_OP_FSYNC,
    abi.IORING_OP_READ_FIXED, abi.IORING_OP_WRITE_FIXED, abi.IORING_OP_READ,
    abi.IORING_OP_WRITE, abi.IORING_OP_FALLOCATE,
))


def timespec(value: Seconds) -> abi.kernel_timespec:
    """A ``__kernel_timespec`` from seconds or a ``timedelta``."""
    if isinstance(value, datetime.timedelta):
        ns = (value.days * 86400 + value.seconds) * 10**9 + value.microseconds * 1000
    elif isinstance(value, (int, float)) and value.__class__ is not bool:
        if not -1e10 < value < 9.2e9:  # NaN and infinities fail too; 2**63 ns is 292 years
            raise ValueError(f"a duration must be finite and under 2**63 ns, got {value!r}")
        ns = int(round(value * 1e9))
    else:
        raise TypeError(f"a duration is seconds (int or float) or a timedelta, "
                        f"not {type(value).__name__}")
    if ns < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    if ns >= 1 << 63:
        raise ValueError(f"a duration must be under 2**63 ns (292 years), got {value!r}")
    ts = abi.kernel_timespec()
    ts.tv_sec, ts.tv_nsec = divmod(ns, 10**9)
    return ts


def c_path(path: Any) -> Tuple[bytes, int]:
    """A NUL-terminated path (``str``, ``bytes`` or ``os.PathLike``) and the
    address of its first byte; keep the bytes as long as the address is used."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"embedded NUL in path {path!r}")
    raw += b"\0"
    return raw, PinnedBuffer(raw).address


class OpsBase(RegisterMixin):
    """Helpers shared by the op groups; see ``uring.ops.Ring``."""

    _supported_ops: Optional[FrozenSet[int]] = None

    # -- operands ------------------------------------------------------------

    def _file(self, fd: Any, fixed: bool) -> int:
        """An fd (int, or anything with ``fileno()``), or with *fixed* a slot
        of the registered file table; refused here when it cannot be one."""
        if fd.__class__ is not int:
            fd = _fileno(fd)
        if not 0 <= fd <= 0x7FFFFFFF:
            raise ValueError(f"bad file descriptor {fd}")
        if fixed and fd >= self._files:
            raise ValueError(
                f"fixed file index {fd} is outside the registered table ({self._files} slots)"
            )
        return fd  # type: ignore[no-any-return]

    def _require(self, opcode: int) -> None:
        """Refuse an opcode this kernel lacks, before submission (the probe,
        taken once per ring), instead of an ``EINVAL`` completion later."""
        ops = self._supported_ops
        if ops is None:
            try:
                ops = self.probe().supported
            except OSError:
                # Restricted rings may refuse the probe: ask a scratch ring.
                with type(self)(1, kernel=self.kernel) as scratch:
                    ops = scratch.probe().supported
            self._supported_ops = ops
        if opcode not in ops:
            raise UnsupportedOperation(op_name(opcode), "IORING_REGISTER_PROBE does not list it")

    def supports(self, opcode: int) -> bool:
        """Whether this kernel supports *opcode* (the probe, cached)."""
        try:
            self._require(int(opcode))
        except UnsupportedOperation:
            return False
        return True

    def _direct_slot(self, op: str, file_index: Optional[int], *, cloexec: str = "",
                     own_table: bool = True) -> int:
        """The SQE ``file_index`` for a *direct descriptor* (a file that goes
        straight into a registered-file slot, never into the fd table):
        slot + 1, ``IORING_FILE_INDEX_ALLOC`` as is (the kernel picks a free
        slot), 0 for None.  *cloexec* names the close-on-exec flag the
        caller was given (a slot is no fd: the kernel refuses it);
        *own_table*: check the slot against this ring's table."""
        if file_index is None:
            return 0
        if not isinstance(file_index, int) or isinstance(file_index, bool):
            raise TypeError(f"{op}: file_index must be an int, not {type(file_index).__name__}")
        if cloexec:
            raise ValueError(f"{op}: {cloexec} cannot be combined with file_index")
        if file_index == _FILE_INDEX_ALLOC:
            return _FILE_INDEX_ALLOC
        limit = self._files if own_table else _FILE_INDEX_ALLOC - 1
        if not 0 <= file_index < limit:
            where = f"the registered file table ({self._files} slots)" if own_table else "a file table"
            raise ValueError(f"{op}: file_index {file_index} is outside {where}")
        return file_index + 1

    def _group(self, op: str, buf_group: Any) -> Any:
        """What a buffer-selecting request (``IOSQE_BUFFER_SELECT``) holds:
        the memory of provided-buffer group *buf_group*, the SQE's u16
        ``buf_group`` (an int, not a bool: ``TypeError``; out of range:
        ``ValueError``)."""
        return self._buffer_group(check_int(f"{op}: buf_group", buf_group, 0, 0xFFFF))

    # -- filling SQEs ----------------------------------------------------------

    def _op(self, opcode: int, *, fd: int = -1, fixed: bool = False, off: int = 0,
            addr: int = 0, len: int = 0, op_flags: int = 0, user_data: Optional[int] = None,
            flags: int = 0, ioprio: int = 0, buf_index: int = 0, personality: int = 0,
            file_index: int = 0, addr3: int = 0, target: Any = None, keep: Any = None,
            decode: Optional[Callable[[int], Any]] = None, cmd: Optional[bytes] = None) -> int:
        """``RingCore.prep_rw`` by the ``io_uring_sqe`` field names, for the
        ops off the hot path (the unions by the name that applies:
        ``op_flags`` is ``rw_flags``/``timeout_flags``/..., ``file_index``
        is ``splice_fd_in``/``optlen``/``addr_len``, ``off`` is
        ``addr2``/``cmd_op``).  Probe-checked; *fd* is taken as given
        (``AT_FDCWD`` and -1 are valid for some ops), *fixed* sets
        ``IOSQE_FIXED_FILE``.  *keep*, *target* and *decode* go into the
        ``Request`` the ring holds until the final CQE.  *cmd*: the
        command data of a ``URING_CMD``."""
        if opcode not in _BASIC_OPS:
            self._require(opcode)
        if fixed:
            flags |= _FIXED_FILE
        if 0x7FFFFFFF < file_index <= 0xFFFFFFFF:  # a u32 (IORING_FILE_INDEX_ALLOC) in the s32
            file_index -= 1 << 32
        if target is None:
            target = FixedFile(fd) if fixed else fd
        return self.prep_rw(opcode, fd, addr, len, off, user_data, flags, op_flags, keep, target,
                            buf_index, ioprio, personality, file_index, addr3, decode, None, cmd)

    # -- values --------------------------------------------------------------------

    @staticmethod
    def _writable(buf: Any) -> PinnedBuffer:
        if buf.__class__ is not PinnedBuffer or not buf.writable:
            buf = pin(buf, True)
        return buf  # type: ignore[no-any-return]

    @staticmethod
    def _readable(buf: Any) -> PinnedBuffer:
        if buf.__class__ is not PinnedBuffer or not buf.live:
            buf = pin(buf, False)
        return buf  # type: ignore[no-any-return]

    @staticmethod
    def _struct_address(obj: Any) -> int:
        return ctypes.addressof(obj)

