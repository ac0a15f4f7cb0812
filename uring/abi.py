"""The kernel's ``include/uapi/linux/io_uring.h`` (Linux 6.18), in Python.

Read this module beside the header: it follows the header's order and uses
its names.  Each group of ``#define``s or ``enum`` members is an ``IntEnum``
or ``IntFlag`` whose members carry the kernel's names, and every member is
also a module-level name, so ``abi.IORING_OP_READ`` works and prints as
``<IoringOp.IORING_OP_READ: 22>``.  Structures are ``ctypes.Structure``s
with the kernel's field names; the header's anonymous unions are
``_anonymous_`` members, so every union member is a direct attribute
(``sqe.off`` and ``sqe.addr2`` are the same eight bytes).

``tests/test_abi.py`` checks every size and field offset against the
numbers the header implies, and every value and layout the machine's own
``<linux/io_uring.h>`` also has against a C program compiled from it.

Not transcribed: the ``IORING_REGISTER_QUERY`` item structures (6.18 added
the opcode; its ``io_uring_query_*`` structs live in a separate header,
``io_uring/query.h``) and the zero-copy receive structures' later
additions; see ``NOTES.md``.
"""

from __future__ import annotations

import ctypes
import enum
import struct
from typing import Any

_u8 = ctypes.c_uint8
_u16 = ctypes.c_uint16
_s32 = ctypes.c_int32
_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_s64 = ctypes.c_int64



# ---------------------------------------------------------------------------
# Types the header takes from elsewhere


class kernel_timespec(ctypes.Structure):
    """``struct __kernel_timespec``: 64-bit seconds and nanoseconds on every
    architecture (timeouts, ``io_uring_getevents_arg.ts``)."""

    _fields_ = [("tv_sec", _s64), ("tv_nsec", _s64)]


class open_how(ctypes.Structure):
    """``struct open_how`` (``linux/openat2.h``), for ``IORING_OP_OPENAT2``."""

    _fields_ = [("flags", _u64), ("mode", _u64), ("resolve", _u64)]


class iovec(ctypes.Structure):
    """``struct iovec``: what READV/WRITEV and buffer registration point at."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


#: ``UIO_MAXIOV`` (``linux/uio.h``): the most iovecs one vectored request
#: takes (READV/WRITEV and their FIXED forms, SENDMSG/RECVMSG, a vectored
#: SEND); more fail with -EINVAL (-EMSGSIZE for a msghdr).
UIO_MAXIOV = 1024


# ---------------------------------------------------------------------------
# struct io_uring_sqe: the submission queue entry (64 bytes; 128 with SQE128)


class _sqe_off(ctypes.Union):
    class _cmd(ctypes.Structure):
        _fields_ = [("cmd_op", _u32), ("__pad1", _u32)]

    _anonymous_ = ("_c",)
    _fields_ = [("off", _u64), ("addr2", _u64), ("_c", _cmd)]


class _sqe_addr(ctypes.Union):
    class _sockopt(ctypes.Structure):
        _fields_ = [("level", _u32), ("optname", _u32)]

    _anonymous_ = ("_s",)
    _fields_ = [("addr", _u64), ("splice_off_in", _u64), ("_s", _sockopt)]


class _sqe_op_flags(ctypes.Union):
    """The per-opcode flags word; which name applies depends on the opcode."""

    _fields_ = [
        (name, _u32)
        for name in (
            "rw_flags", "fsync_flags", "poll32_events", "sync_range_flags", "msg_flags",
            "timeout_flags", "accept_flags", "cancel_flags", "open_flags", "statx_flags",
            "fadvise_advice", "splice_flags", "rename_flags", "unlink_flags",
            "hardlink_flags", "xattr_flags", "msg_ring_flags", "uring_cmd_flags",
            "waitid_flags", "futex_flags", "install_fd_flags", "nop_flags", "pipe_flags",
        )
    ] + [("poll_events", _u16)]


class _sqe_buf(ctypes.Union):
    _fields_ = [("buf_index", _u16), ("buf_group", _u16)]


class _sqe_fd_in(ctypes.Union):
    class _addr_len(ctypes.Structure):
        _fields_ = [("addr_len", _u16), ("__pad3", _u16 * 1)]

    class _write_stream(ctypes.Structure):
        _fields_ = [("write_stream", _u8), ("__pad4", _u8 * 3)]

    _anonymous_ = ("_a", "_w")
    _fields_ = [
        ("splice_fd_in", _s32),
        ("file_index", _u32),
        ("zcrx_ifq_idx", _u32),
        ("optlen", _u32),
        ("_a", _addr_len),
        ("_w", _write_stream),
    ]


class _sqe_tail(ctypes.Union):
    class _addr3(ctypes.Structure):
        _fields_ = [("addr3", _u64), ("__pad2", _u64 * 1)]

    class _attr(ctypes.Structure):
        _fields_ = [("attr_ptr", _u64), ("attr_type_mask", _u64)]

    _anonymous_ = ("_a3", "_at")
    _fields_ = [("_a3", _addr3), ("_at", _attr), ("optval", _u64)]


_SQE_FIELDS: list[Any] = [
    ("opcode", _u8),
    ("flags", _u8),
    ("ioprio", _u16),
    ("fd", _s32),
    ("_off", _sqe_off),
    ("_addr", _sqe_addr),
    ("len", _u32),
    ("_op_flags", _sqe_op_flags),
    ("user_data", _u64),
    ("_buf", _sqe_buf),
    ("personality", _u16),
    ("_fd_in", _sqe_fd_in),
    ("_tail", _sqe_tail),
]
_SQE_ANON = ("_off", "_addr", "_op_flags", "_buf", "_fd_in", "_tail")


class io_uring_sqe(ctypes.Structure):
    """One submission queue entry, as user space fills it."""

    _anonymous_ = _SQE_ANON
    _fields_ = _SQE_FIELDS


class io_uring_sqe128(ctypes.Structure):
    """An SQE of a ring set up with ``IORING_SETUP_SQE128``: the 64-byte
    entry followed by 64 bytes of command data (``cmd``, for URING_CMD)."""

    _anonymous_ = _SQE_ANON
    _fields_ = _SQE_FIELDS + [("cmd", _u8 * 64)]


#: ``struct io_uring_sqe`` as one ``struct`` format, so a whole SQE is
#: written by one ``pack_into`` (one C call that also range-checks every
#: field).  The fields, in the header's order and with its widths and
#: signedness, each union by its first member: ``opcode`` (u8), ``flags``
#: (u8), ``ioprio`` (u16), ``fd`` (s32), ``off`` (u64; -1, "the file
#: position", is its all-ones value), ``addr`` (u64), ``len`` (u32), the
#: op-flags word (u32: ``rw_flags``, ``fsync_flags``, ...), ``user_data``
#: (u64), ``buf_index`` (u16), ``personality`` (u16), ``splice_fd_in``
#: (s32; ``file_index`` is the same word unsigned), ``addr3`` (u64) and
#: ``__pad2[0]`` (u64).  A 128-byte SQE (``IORING_SETUP_SQE128``) is this
#: followed by 64 bytes of command data.
SQE_FORMAT = "<BBHiQQIIQHHiQQ"
SQE_STRUCT = struct.Struct(SQE_FORMAT)
#: The first nine fields of ``SQE_FORMAT`` alone (the first 40 bytes:
#: ``opcode`` .. ``user_data``), for a request whose other fields are zero;
#: ``off`` packed signed, so -1 ("the file position") is its u64 all-ones
#: as C's cast makes it.
SQE_HEAD_STRUCT = struct.Struct("<BBHiqQIIQ")
#: The byte offset of each field of ``SQE_FORMAT`` in ``io_uring_sqe``.
SQE_FIELD_OFFSETS = {
    "opcode": 0, "flags": 1, "ioprio": 2, "fd": 4, "off": 8, "addr": 16, "len": 24,
    "op_flags": 28, "user_data": 32, "buf_index": 40, "personality": 42,
    "splice_fd_in": 44, "addr3": 48, "__pad2": 56,
}
#: ``struct io_uring_cqe``: ``user_data`` (u64), ``res`` (s32), ``flags`` (u32).
CQE_FORMAT = "<QiI"
CQE_STRUCT = struct.Struct(CQE_FORMAT)
#: A 32-byte CQE: the same, then ``big_cqe[2]`` (two u64).
CQE32_FORMAT = "<QiIQQ"
CQE32_STRUCT = struct.Struct(CQE32_FORMAT)
assert SQE_STRUCT.size == 64 and CQE_STRUCT.size == 16 and CQE32_STRUCT.size == 32


class io_uring_attr_pi(ctypes.Structure):
    """``struct io_uring_attr_pi``: protection information for a read/write,
    pointed at by ``sqe.attr_ptr`` with ``IORING_RW_ATTR_FLAG_PI``."""

    _fields_ = [
        ("flags", _u16),
        ("app_tag", _u16),
        ("len", _u32),
        ("addr", _u64),
        ("seed", _u64),
        ("rsvd", _u64),
    ]


IORING_RW_ATTR_FLAG_PI = 1 << 0

#: ``sqe.file_index`` value asking the kernel to pick a free direct-descriptor slot.
IORING_FILE_INDEX_ALLOC = 0xFFFFFFFF


class IosqeBit(enum.IntEnum):
    """``enum io_uring_sqe_flags_bit``: bit numbers of ``sqe.flags``."""

    IOSQE_FIXED_FILE_BIT = 0
    IOSQE_IO_DRAIN_BIT = 1
    IOSQE_IO_LINK_BIT = 2
    IOSQE_IO_HARDLINK_BIT = 3
    IOSQE_ASYNC_BIT = 4
    IOSQE_BUFFER_SELECT_BIT = 5
    IOSQE_CQE_SKIP_SUCCESS_BIT = 6


class IosqeFlags(enum.IntFlag):
    """``sqe.flags``: how the kernel treats this one request."""

    IOSQE_FIXED_FILE = 1 << 0  # fd is an index into the registered file table
    IOSQE_IO_DRAIN = 1 << 1  # issue only after every earlier request completed
    IOSQE_IO_LINK = 1 << 2  # the next SQE starts only if this one succeeds
    IOSQE_IO_HARDLINK = 1 << 3  # like LINK, but the chain survives a failure
    IOSQE_ASYNC = 1 << 4  # always go to an io-wq worker
    IOSQE_BUFFER_SELECT = 1 << 5  # pick a provided buffer from sqe.buf_group
    IOSQE_CQE_SKIP_SUCCESS = 1 << 6  # post no CQE if the request succeeds


class IoringSetup(enum.IntFlag):
    """``io_uring_setup(2)`` flags (``io_uring_params.flags``)."""

    IORING_SETUP_IOPOLL = 1 << 0  # completions found by busy-polling the device
    IORING_SETUP_SQPOLL = 1 << 1  # a kernel thread consumes the SQ
    IORING_SETUP_SQ_AFF = 1 << 2  # sq_thread_cpu is valid
    IORING_SETUP_CQSIZE = 1 << 3  # cq_entries is valid
    IORING_SETUP_CLAMP = 1 << 4  # clamp sizes to the maximum instead of EINVAL
    IORING_SETUP_ATTACH_WQ = 1 << 5  # share io-wq with wq_fd
    IORING_SETUP_R_DISABLED = 1 << 6  # start disabled (IORING_REGISTER_ENABLE_RINGS)
    IORING_SETUP_SUBMIT_ALL = 1 << 7  # go on submitting after a failed SQE
    IORING_SETUP_COOP_TASKRUN = 1 << 8  # no IPI to run completion task work
    IORING_SETUP_TASKRUN_FLAG = 1 << 9  # flag pending task work in IORING_SQ_TASKRUN
    IORING_SETUP_SQE128 = 1 << 10  # 128-byte SQEs
    IORING_SETUP_CQE32 = 1 << 11  # 32-byte CQEs
    IORING_SETUP_SINGLE_ISSUER = 1 << 12  # only one task submits
    IORING_SETUP_DEFER_TASKRUN = 1 << 13  # task work only inside io_uring_enter(GETEVENTS)
    IORING_SETUP_NO_MMAP = 1 << 14  # rings live in user-provided memory
    IORING_SETUP_REGISTERED_FD_ONLY = 1 << 15  # return a registered ring index, no fd
    IORING_SETUP_NO_SQARRAY = 1 << 16  # no SQ index array: SQE t is sqes[t & mask]
    IORING_SETUP_HYBRID_IOPOLL = 1 << 17  # sleep before polling (with IOPOLL)
    IORING_SETUP_CQE_MIXED = 1 << 18  # 16- and 32-byte CQEs in one ring (6.18)


class IoringOp(enum.IntEnum):
    """``enum io_uring_op``: what an SQE asks the kernel to do."""

    IORING_OP_NOP = 0
    IORING_OP_READV = 1
    IORING_OP_WRITEV = 2
    IORING_OP_FSYNC = 3
    IORING_OP_READ_FIXED = 4
    IORING_OP_WRITE_FIXED = 5
    IORING_OP_POLL_ADD = 6
    IORING_OP_POLL_REMOVE = 7
    IORING_OP_SYNC_FILE_RANGE = 8
    IORING_OP_SENDMSG = 9
    IORING_OP_RECVMSG = 10
    IORING_OP_TIMEOUT = 11
    IORING_OP_TIMEOUT_REMOVE = 12
    IORING_OP_ACCEPT = 13
    IORING_OP_ASYNC_CANCEL = 14
    IORING_OP_LINK_TIMEOUT = 15
    IORING_OP_CONNECT = 16
    IORING_OP_FALLOCATE = 17
    IORING_OP_OPENAT = 18
    IORING_OP_CLOSE = 19
    IORING_OP_FILES_UPDATE = 20
    IORING_OP_STATX = 21
    IORING_OP_READ = 22
    IORING_OP_WRITE = 23
    IORING_OP_FADVISE = 24
    IORING_OP_MADVISE = 25
    IORING_OP_SEND = 26
    IORING_OP_RECV = 27
    IORING_OP_OPENAT2 = 28
    IORING_OP_EPOLL_CTL = 29
    IORING_OP_SPLICE = 30
    IORING_OP_PROVIDE_BUFFERS = 31
    IORING_OP_REMOVE_BUFFERS = 32
    IORING_OP_TEE = 33
    IORING_OP_SHUTDOWN = 34
    IORING_OP_RENAMEAT = 35
    IORING_OP_UNLINKAT = 36
    IORING_OP_MKDIRAT = 37
    IORING_OP_SYMLINKAT = 38
    IORING_OP_LINKAT = 39
    IORING_OP_MSG_RING = 40
    IORING_OP_FSETXATTR = 41
    IORING_OP_SETXATTR = 42
    IORING_OP_FGETXATTR = 43
    IORING_OP_GETXATTR = 44
    IORING_OP_SOCKET = 45
    IORING_OP_URING_CMD = 46
    IORING_OP_SEND_ZC = 47
    IORING_OP_SENDMSG_ZC = 48
    IORING_OP_READ_MULTISHOT = 49
    IORING_OP_WAITID = 50
    IORING_OP_FUTEX_WAIT = 51
    IORING_OP_FUTEX_WAKE = 52
    IORING_OP_FUTEX_WAITV = 53
    IORING_OP_FIXED_FD_INSTALL = 54
    IORING_OP_FTRUNCATE = 55
    IORING_OP_BIND = 56
    IORING_OP_LISTEN = 57
    IORING_OP_RECV_ZC = 58
    IORING_OP_EPOLL_WAIT = 59
    IORING_OP_READV_FIXED = 60
    IORING_OP_WRITEV_FIXED = 61
    IORING_OP_PIPE = 62
    IORING_OP_LAST = 63  # "this goes last, obviously"


class IoringUringCmd(enum.IntFlag):
    """``sqe.uring_cmd_flags``."""

    IORING_URING_CMD_FIXED = 1 << 0  # use a registered buffer (sqe.buf_index)
    IORING_URING_CMD_MULTISHOT = 1 << 1  # multishot command (with provided buffers)


IORING_URING_CMD_MASK = IoringUringCmd.IORING_URING_CMD_FIXED | IoringUringCmd.IORING_URING_CMD_MULTISHOT


class IoringFsync(enum.IntFlag):
    """``sqe.fsync_flags``."""

    IORING_FSYNC_DATASYNC = 1 << 0  # fdatasync(2) instead of fsync(2)


class IoringTimeout(enum.IntFlag):
    """``sqe.timeout_flags`` for TIMEOUT, TIMEOUT_REMOVE and LINK_TIMEOUT."""

    IORING_TIMEOUT_ABS = 1 << 0  # an absolute time, not a duration
    IORING_TIMEOUT_UPDATE = 1 << 1  # TIMEOUT_REMOVE: update instead of remove
    IORING_TIMEOUT_BOOTTIME = 1 << 2  # CLOCK_BOOTTIME
    IORING_TIMEOUT_REALTIME = 1 << 3  # CLOCK_REALTIME
    IORING_LINK_TIMEOUT_UPDATE = 1 << 4  # update a linked timeout
    IORING_TIMEOUT_ETIME_SUCCESS = 1 << 5  # expiry completes with -ETIME as success
    IORING_TIMEOUT_MULTISHOT = 1 << 6  # fire repeatedly (count in sqe.off)


IORING_TIMEOUT_CLOCK_MASK = IoringTimeout.IORING_TIMEOUT_BOOTTIME | IoringTimeout.IORING_TIMEOUT_REALTIME
IORING_TIMEOUT_UPDATE_MASK = IoringTimeout.IORING_TIMEOUT_UPDATE | IoringTimeout.IORING_LINK_TIMEOUT_UPDATE

#: ``sqe.splice_flags``: splice_fd_in is a registered file index.
SPLICE_F_FD_IN_FIXED = 1 << 31


class IoringPoll(enum.IntFlag):
    """POLL_ADD / POLL_REMOVE command flags (in ``sqe.len``; ``poll32_events``
    holds the poll mask itself)."""

    IORING_POLL_ADD_MULTI = 1 << 0  # multishot: keep posting CQEs (F_MORE)
    IORING_POLL_UPDATE_EVENTS = 1 << 1  # POLL_REMOVE: update the event mask
    IORING_POLL_UPDATE_USER_DATA = 1 << 2  # POLL_REMOVE: update user_data
    IORING_POLL_ADD_LEVEL = 1 << 3  # level-triggered


class IoringAsyncCancel(enum.IntFlag):
    """``sqe.cancel_flags`` (ASYNC_CANCEL and ``io_uring_sync_cancel_reg``)."""

    IORING_ASYNC_CANCEL_ALL = 1 << 0  # every match, not only the first
    IORING_ASYNC_CANCEL_FD = 1 << 1  # match on sqe.fd
    IORING_ASYNC_CANCEL_ANY = 1 << 2  # match any request
    IORING_ASYNC_CANCEL_FD_FIXED = 1 << 3  # sqe.fd is a registered file index
    IORING_ASYNC_CANCEL_USERDATA = 1 << 4  # match on user_data (the default)
    IORING_ASYNC_CANCEL_OP = 1 << 5  # match on opcode (sqe.len)


class IoringRecvSend(enum.IntFlag):
    """send/recv flags, carried in ``sqe.ioprio``."""

    IORING_RECVSEND_POLL_FIRST = 1 << 0  # poll before trying the transfer
    IORING_RECV_MULTISHOT = 1 << 1  # multishot recv (with provided buffers)
    IORING_RECVSEND_FIXED_BUF = 1 << 2  # a registered buffer (sqe.buf_index)
    IORING_SEND_ZC_REPORT_USAGE = 1 << 3  # the notification says if data was copied
    IORING_RECVSEND_BUNDLE = 1 << 4  # many provided buffers in one completion
    IORING_SEND_VECTORIZED = 1 << 5  # SEND/SEND_ZC take an iovec array


#: In a SEND_ZC notification's ``res``: the kernel fell back to copying.
IORING_NOTIF_USAGE_ZC_COPIED = 1 << 31


class IoringAccept(enum.IntFlag):
    """accept flags, carried in ``sqe.ioprio``."""

    IORING_ACCEPT_MULTISHOT = 1 << 0
    IORING_ACCEPT_DONTWAIT = 1 << 1
    IORING_ACCEPT_POLL_FIRST = 1 << 2


class IoringMsgRingOp(enum.IntEnum):
    """``enum io_uring_msg_ring_flags``: what MSG_RING sends (in ``sqe.addr``)."""

    IORING_MSG_DATA = 0  # post a CQE with sqe.off as user_data, sqe.len as res
    IORING_MSG_SEND_FD = 1  # install one of our registered files in the target


class IoringMsgRing(enum.IntFlag):
    """``sqe.msg_ring_flags``."""

    IORING_MSG_RING_CQE_SKIP = 1 << 0  # post no CQE in the target ring (fd passing only)
    IORING_MSG_RING_FLAGS_PASS = 1 << 1  # pass sqe.file_index as the target CQE's flags


class IoringFixedFdInstall(enum.IntFlag):
    """``sqe.install_fd_flags``."""

    IORING_FIXED_FD_NO_CLOEXEC = 1 << 0


class IoringNop(enum.IntFlag):
    """``sqe.nop_flags``: NOP's test hooks."""

    IORING_NOP_INJECT_RESULT = 1 << 0  # complete with sqe.len as res
    IORING_NOP_FILE = 1 << 1  # look up sqe.fd
    IORING_NOP_FIXED_FILE = 1 << 2  # ... as a registered file
    IORING_NOP_FIXED_BUFFER = 1 << 3  # look up registered buffer sqe.buf_index
    IORING_NOP_TW = 1 << 4  # complete through task work
    IORING_NOP_CQE32 = 1 << 5  # post a 32-byte CQE (CQE32 or CQE_MIXED rings)


# ---------------------------------------------------------------------------
# struct io_uring_cqe: the completion queue entry (16 bytes; 32 with CQE32)


class io_uring_cqe(ctypes.Structure):
    """One completion: the SQE's user_data, the result (``-errno`` on
    failure) and ``IORING_CQE_F_*`` flags."""

    _fields_ = [("user_data", _u64), ("res", _s32), ("flags", _u32)]


class io_uring_cqe32(ctypes.Structure):
    """A 32-byte CQE (``IORING_SETUP_CQE32``, or ``IORING_CQE_F_32`` in a
    ``CQE_MIXED`` ring): two more words, ``big_cqe[2]``."""

    _fields_ = [("user_data", _u64), ("res", _s32), ("flags", _u32), ("big_cqe", _u64 * 2)]


class IoringCqeF(enum.IntFlag):
    """``cqe.flags``."""

    IORING_CQE_F_BUFFER = 1 << 0  # upper 16 bits hold the provided buffer id
    IORING_CQE_F_MORE = 1 << 1  # the request will post more CQEs
    IORING_CQE_F_SOCK_NONEMPTY = 1 << 2  # more data is waiting in the socket
    IORING_CQE_F_NOTIF = 1 << 3  # a zero-copy send's notification
    IORING_CQE_F_BUF_MORE = 1 << 4  # the provided buffer was only partly used
    IORING_CQE_F_SKIP = 1 << 5  # a CQE_MIXED filler: ignore it
    IORING_CQE_F_32 = 1 << 15  # a 32-byte CQE in a CQE_MIXED ring


IORING_CQE_BUFFER_SHIFT = 16


# ---------------------------------------------------------------------------
# mmap offsets and the ring offset tables


class IoringOff(enum.IntEnum):
    """Magic ``mmap`` offsets of the ring fd's regions."""

    IORING_OFF_SQ_RING = 0
    IORING_OFF_CQ_RING = 0x8000000
    IORING_OFF_SQES = 0x10000000
    IORING_OFF_PBUF_RING = 0x80000000  # + (bgid << IORING_OFF_PBUF_SHIFT)


IORING_OFF_PBUF_SHIFT = 16
IORING_OFF_MMAP_MASK = 0xF8000000


class io_sqring_offsets(ctypes.Structure):
    """Where the SQ ring's words live in its mapping (filled by setup)."""

    _fields_ = [
        ("head", _u32),
        ("tail", _u32),
        ("ring_mask", _u32),
        ("ring_entries", _u32),
        ("flags", _u32),
        ("dropped", _u32),
        ("array", _u32),
        ("resv1", _u32),
        ("user_addr", _u64),
    ]


class IoringSqFlags(enum.IntFlag):
    """The SQ ring's ``flags`` word, written by the kernel."""

    IORING_SQ_NEED_WAKEUP = 1 << 0  # the SQPOLL thread sleeps: enter with SQ_WAKEUP
    IORING_SQ_CQ_OVERFLOW = 1 << 1  # CQEs wait on the overflow list: enter to flush
    IORING_SQ_TASKRUN = 1 << 2  # task work pending: enter with GETEVENTS


class io_cqring_offsets(ctypes.Structure):
    """Where the CQ ring's words and CQEs live in its mapping."""

    _fields_ = [
        ("head", _u32),
        ("tail", _u32),
        ("ring_mask", _u32),
        ("ring_entries", _u32),
        ("overflow", _u32),
        ("cqes", _u32),
        ("flags", _u32),
        ("resv1", _u32),
        ("user_addr", _u64),
    ]


class IoringCqFlags(enum.IntFlag):
    """The CQ ring's ``flags`` word, written by user space."""

    IORING_CQ_EVENTFD_DISABLED = 1 << 0  # do not signal the registered eventfd


class IoringEnter(enum.IntFlag):
    """``io_uring_enter(2)`` flags."""

    IORING_ENTER_GETEVENTS = 1 << 0  # wait for min_complete CQEs
    IORING_ENTER_SQ_WAKEUP = 1 << 1  # wake the SQPOLL thread
    IORING_ENTER_SQ_WAIT = 1 << 2  # wait for SQ space (SQPOLL)
    IORING_ENTER_EXT_ARG = 1 << 3  # arg is an io_uring_getevents_arg
    IORING_ENTER_REGISTERED_RING = 1 << 4  # fd is a registered ring index
    IORING_ENTER_ABS_TIMER = 1 << 5  # the EXT_ARG timeout is absolute
    IORING_ENTER_EXT_ARG_REG = 1 << 6  # arg indexes a registered wait region
    IORING_ENTER_NO_IOWAIT = 1 << 7  # do not count the wait as iowait


class io_uring_params(ctypes.Structure):
    """``io_uring_setup(2)``'s in/out argument."""

    _fields_ = [
        ("sq_entries", _u32),
        ("cq_entries", _u32),
        ("flags", _u32),
        ("sq_thread_cpu", _u32),
        ("sq_thread_idle", _u32),
        ("features", _u32),
        ("wq_fd", _u32),
        ("resv", _u32 * 3),
        ("sq_off", io_sqring_offsets),
        ("cq_off", io_cqring_offsets),
    ]


class IoringFeat(enum.IntFlag):
    """``io_uring_params.features``: what this kernel does, reported at setup."""

    IORING_FEAT_SINGLE_MMAP = 1 << 0  # SQ and CQ ring share one mapping
    IORING_FEAT_NODROP = 1 << 1  # CQEs overflow to a list instead of being dropped
    IORING_FEAT_SUBMIT_STABLE = 1 << 2  # SQE data is consumed at submit
    IORING_FEAT_RW_CUR_POS = 1 << 3  # offset -1 means the file position
    IORING_FEAT_CUR_PERSONALITY = 1 << 4  # requests run with the submitter's creds
    IORING_FEAT_FAST_POLL = 1 << 5  # internal poll instead of a worker
    IORING_FEAT_POLL_32BITS = 1 << 6  # poll32_events
    IORING_FEAT_SQPOLL_NONFIXED = 1 << 7  # SQPOLL without fixed files
    IORING_FEAT_EXT_ARG = 1 << 8  # IORING_ENTER_EXT_ARG
    IORING_FEAT_NATIVE_WORKERS = 1 << 9  # io-wq workers are threads of the task
    IORING_FEAT_RSRC_TAGS = 1 << 10  # tagged resource registration
    IORING_FEAT_CQE_SKIP = 1 << 11  # IOSQE_CQE_SKIP_SUCCESS
    IORING_FEAT_LINKED_FILE = 1 << 12  # linked requests' files resolved late
    IORING_FEAT_REG_REG_RING = 1 << 13  # register ops through a registered ring
    IORING_FEAT_RECVSEND_BUNDLE = 1 << 14  # IORING_RECVSEND_BUNDLE
    IORING_FEAT_MIN_TIMEOUT = 1 << 15  # min_wait_usec in getevents_arg
    IORING_FEAT_RW_ATTR = 1 << 16  # read/write attributes (attr_ptr)
    IORING_FEAT_NO_IOWAIT = 1 << 17  # IORING_ENTER_NO_IOWAIT


# ---------------------------------------------------------------------------
# io_uring_register(2)


class IoringRegisterOp(enum.IntEnum):
    """``enum io_uring_register_op``."""

    IORING_REGISTER_BUFFERS = 0
    IORING_UNREGISTER_BUFFERS = 1
    IORING_REGISTER_FILES = 2
    IORING_UNREGISTER_FILES = 3
    IORING_REGISTER_EVENTFD = 4
    IORING_UNREGISTER_EVENTFD = 5
    IORING_REGISTER_FILES_UPDATE = 6
    IORING_REGISTER_EVENTFD_ASYNC = 7
    IORING_REGISTER_PROBE = 8
    IORING_REGISTER_PERSONALITY = 9
    IORING_UNREGISTER_PERSONALITY = 10
    IORING_REGISTER_RESTRICTIONS = 11
    IORING_REGISTER_ENABLE_RINGS = 12
    IORING_REGISTER_FILES2 = 13  # extended with tagging
    IORING_REGISTER_FILES_UPDATE2 = 14
    IORING_REGISTER_BUFFERS2 = 15
    IORING_REGISTER_BUFFERS_UPDATE = 16
    IORING_REGISTER_IOWQ_AFF = 17  # set/clear io-wq thread affinities
    IORING_UNREGISTER_IOWQ_AFF = 18
    IORING_REGISTER_IOWQ_MAX_WORKERS = 19
    IORING_REGISTER_RING_FDS = 20  # register/unregister io_uring fds with the ring
    IORING_UNREGISTER_RING_FDS = 21
    IORING_REGISTER_PBUF_RING = 22  # provided-buffer rings
    IORING_UNREGISTER_PBUF_RING = 23
    IORING_REGISTER_SYNC_CANCEL = 24
    IORING_REGISTER_FILE_ALLOC_RANGE = 25
    IORING_REGISTER_PBUF_STATUS = 26
    IORING_REGISTER_NAPI = 27
    IORING_UNREGISTER_NAPI = 28
    IORING_REGISTER_CLOCK = 29
    IORING_REGISTER_CLONE_BUFFERS = 30
    IORING_REGISTER_SEND_MSG_RING = 31  # MSG_RING without a source ring
    IORING_REGISTER_ZCRX_IFQ = 32  # zero-copy receive queue
    IORING_REGISTER_RESIZE_RINGS = 33
    IORING_REGISTER_MEM_REGION = 34
    IORING_REGISTER_QUERY = 35  # 6.18
    IORING_REGISTER_LAST = 36


#: OR'ed into the register opcode: fd is a registered ring index.
IORING_REGISTER_USE_REGISTERED_RING = 1 << 31


class IoWqType(enum.IntEnum):
    """io-wq worker kinds, indexes of IORING_REGISTER_IOWQ_MAX_WORKERS's array."""

    IO_WQ_BOUND = 0
    IO_WQ_UNBOUND = 1


class io_uring_files_update(ctypes.Structure):
    """Deprecated by ``io_uring_rsrc_update``; IORING_REGISTER_FILES_UPDATE."""

    _fields_ = [("offset", _u32), ("resv", _u32), ("fds", _u64)]


IORING_MEM_REGION_TYPE_USER = 1  # io_uring_region_desc.flags


class io_uring_region_desc(ctypes.Structure):
    """A memory region shared with the kernel (IORING_REGISTER_MEM_REGION)."""

    _fields_ = [
        ("user_addr", _u64),
        ("size", _u64),
        ("flags", _u32),
        ("id", _u32),
        ("mmap_offset", _u64),
        ("__resv", _u64 * 4),
    ]


IORING_MEM_REGION_REG_WAIT_ARG = 1  # io_uring_mem_region_reg.flags


class io_uring_mem_region_reg(ctypes.Structure):
    _fields_ = [("region_uptr", _u64), ("flags", _u64), ("__resv", _u64 * 2)]


IORING_RSRC_REGISTER_SPARSE = 1 << 0  # io_uring_rsrc_register.flags


class io_uring_rsrc_register(ctypes.Structure):
    """Argument of IORING_REGISTER_FILES2/BUFFERS2 (tags, sparse tables)."""

    _fields_ = [("nr", _u32), ("flags", _u32), ("resv2", _u64), ("data", _u64), ("tags", _u64)]


class io_uring_rsrc_update(ctypes.Structure):
    """One slot update; also the argument of IORING_REGISTER_RING_FDS."""

    _fields_ = [("offset", _u32), ("resv", _u32), ("data", _u64)]


class io_uring_rsrc_update2(ctypes.Structure):
    _fields_ = [
        ("offset", _u32),
        ("resv", _u32),
        ("data", _u64),
        ("tags", _u64),
        ("nr", _u32),
        ("resv2", _u32),
    ]


#: In a file update: leave this slot as it is.
IORING_REGISTER_FILES_SKIP = -2

#: ``io_uring_probe_op.flags``: the opcode is usable.
IO_URING_OP_SUPPORTED = 1 << 0


class io_uring_probe_op(ctypes.Structure):
    _fields_ = [("op", _u8), ("resv", _u8), ("flags", _u16), ("resv2", _u32)]


class io_uring_probe(ctypes.Structure):
    """IORING_REGISTER_PROBE's answer header; ``ops[]`` follows (see
    ``probe_struct``)."""

    _fields_ = [("last_op", _u8), ("ops_len", _u8), ("resv", _u16), ("resv2", _u32 * 3)]


def probe_struct(nr_ops: int) -> Any:
    """An ``io_uring_probe`` followed by room for *nr_ops* ``ops[]``."""

    class io_uring_probe_n(ctypes.Structure):
        _fields_ = list(io_uring_probe._fields_) + [("ops", io_uring_probe_op * nr_ops)]

    return io_uring_probe_n()


class _restriction_arg(ctypes.Union):
    _fields_ = [("register_op", _u8), ("sqe_op", _u8), ("sqe_flags", _u8)]


class io_uring_restriction(ctypes.Structure):
    """One rule of IORING_REGISTER_RESTRICTIONS."""

    _anonymous_ = ("_arg",)
    _fields_ = [("opcode", _u16), ("_arg", _restriction_arg), ("resv", _u8), ("resv2", _u32 * 3)]


class io_uring_clock_register(ctypes.Structure):
    _fields_ = [("clockid", _u32), ("__resv", _u32 * 3)]


class IoringRegisterCloneFlags(enum.IntFlag):
    """``io_uring_clone_buffers.flags``."""

    IORING_REGISTER_SRC_REGISTERED = 1 << 0  # src_fd is a registered ring index
    IORING_REGISTER_DST_REPLACE = 1 << 1  # replace the destination's buffers


class io_uring_clone_buffers(ctypes.Structure):
    _fields_ = [
        ("src_fd", _u32),
        ("flags", _u32),
        ("src_off", _u32),
        ("dst_off", _u32),
        ("nr", _u32),
        ("pad", _u32 * 3),
    ]


class io_uring_buf(ctypes.Structure):
    """One entry of a provided-buffer ring."""

    _fields_ = [("addr", _u64), ("len", _u32), ("bid", _u16), ("resv", _u16)]


class _buf_ring_head(ctypes.Structure):
    _fields_ = [("resv1", _u64), ("resv2", _u32), ("resv3", _u16), ("tail", _u16)]


class io_uring_buf_ring(ctypes.Structure):
    """The provided-buffer ring: entry 0's ``resv`` field doubles as the
    ring's ``tail`` (user space publishes it with a release store); the
    ``bufs[]`` follow from offset 0."""

    _anonymous_ = ("_head",)
    _fields_ = [("_head", _buf_ring_head)]


class IouPbufRing(enum.IntFlag):
    """``enum io_uring_register_pbuf_ring_flags`` (``io_uring_buf_reg.flags``)."""

    IOU_PBUF_RING_MMAP = 1  # the kernel allocates the ring; mmap it
    IOU_PBUF_RING_INC = 2  # buffers are consumed incrementally


class io_uring_buf_reg(ctypes.Structure):
    """Argument of IORING_(UN)REGISTER_PBUF_RING."""

    _fields_ = [
        ("ring_addr", _u64),
        ("ring_entries", _u32),
        ("bgid", _u16),
        ("flags", _u16),
        ("resv", _u64 * 3),
    ]


class io_uring_buf_status(ctypes.Structure):
    """Argument of IORING_REGISTER_PBUF_STATUS."""

    _fields_ = [("buf_group", _u32), ("head", _u32), ("resv", _u32 * 8)]


class IoUringNapiOp(enum.IntEnum):
    """``enum io_uring_napi_op``."""

    IO_URING_NAPI_REGISTER_OP = 0
    IO_URING_NAPI_STATIC_ADD_ID = 1
    IO_URING_NAPI_STATIC_DEL_ID = 2


class IoUringNapiTracking(enum.IntEnum):
    """``enum io_uring_napi_tracking_strategy``."""

    IO_URING_NAPI_TRACKING_DYNAMIC = 0
    IO_URING_NAPI_TRACKING_STATIC = 1
    IO_URING_NAPI_TRACKING_INACTIVE = 255


class io_uring_napi(ctypes.Structure):
    _fields_ = [
        ("busy_poll_to", _u32),
        ("prefer_busy_poll", _u8),
        ("opcode", _u8),
        ("pad", _u8 * 2),
        ("op_param", _u32),
        ("resv", _u32),
    ]


class IoringRestriction(enum.IntEnum):
    """``enum io_uring_register_restriction_op`` (``io_uring_restriction.opcode``)."""

    IORING_RESTRICTION_REGISTER_OP = 0  # allow an io_uring_register(2) opcode
    IORING_RESTRICTION_SQE_OP = 1  # allow an SQE opcode
    IORING_RESTRICTION_SQE_FLAGS_ALLOWED = 2  # allow these sqe flags
    IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3  # require these sqe flags
    IORING_RESTRICTION_LAST = 4


IORING_REG_WAIT_TS = 1 << 0  # io_uring_reg_wait.flags: ts is valid


class io_uring_reg_wait(ctypes.Structure):
    """A wait argument kept in a registered region (IORING_ENTER_EXT_ARG_REG)."""

    _fields_ = [
        ("ts", kernel_timespec),
        ("min_wait_usec", _u32),
        ("flags", _u32),
        ("sigmask", _u64),
        ("sigmask_sz", _u32),
        ("pad", _u32 * 3),
        ("pad2", _u64 * 2),
    ]


class io_uring_getevents_arg(ctypes.Structure):
    """``io_uring_enter``'s argument with IORING_ENTER_EXT_ARG: a signal mask
    and a timeout (``ts`` is the address of a ``kernel_timespec``)."""

    _fields_ = [("sigmask", _u64), ("sigmask_sz", _u32), ("min_wait_usec", _u32), ("ts", _u64)]


class io_uring_sync_cancel_reg(ctypes.Structure):
    """Argument of IORING_REGISTER_SYNC_CANCEL."""

    _fields_ = [
        ("addr", _u64),
        ("fd", _s32),
        ("flags", _u32),
        ("timeout", kernel_timespec),
        ("opcode", _u8),
        ("pad", _u8 * 7),
        ("pad2", _u64 * 3),
    ]


class io_uring_file_index_range(ctypes.Structure):
    """Argument of IORING_REGISTER_FILE_ALLOC_RANGE."""

    _fields_ = [("off", _u32), ("len", _u32), ("resv", _u64)]


class io_uring_recvmsg_out(ctypes.Structure):
    """Header the kernel writes at the start of a multishot RECVMSG buffer."""

    _fields_ = [("namelen", _u32), ("controllen", _u32), ("payloadlen", _u32), ("flags", _u32)]


class IoUringSocketOp(enum.IntEnum):
    """``enum io_uring_socket_op``: URING_CMD on sockets (``sqe.cmd_op``)."""

    SOCKET_URING_OP_SIOCINQ = 0
    SOCKET_URING_OP_SIOCOUTQ = 1
    SOCKET_URING_OP_GETSOCKOPT = 2
    SOCKET_URING_OP_SETSOCKOPT = 3
    SOCKET_URING_OP_TX_TIMESTAMP = 4


IORING_TIMESTAMP_HW_SHIFT = 16  # SOCKET_URING_OP_TX_TIMESTAMP cqe flags
IORING_TIMESTAMP_TYPE_SHIFT = IORING_TIMESTAMP_HW_SHIFT + 1


class io_timespec(ctypes.Structure):
    """TX timestamp carried in a big CQE."""

    _fields_ = [("tv_sec", _u64), ("tv_nsec", _u64)]


# Zero-copy receive (IORING_OP_RECV_ZC, IORING_REGISTER_ZCRX_IFQ)


class io_uring_zcrx_rqe(ctypes.Structure):
    """Refill queue entry: a buffer given back to the NIC."""

    _fields_ = [("off", _u64), ("len", _u32), ("__pad", _u32)]


class io_uring_zcrx_cqe(ctypes.Structure):
    """The second half of a RECV_ZC big CQE."""

    _fields_ = [("off", _u64), ("__pad", _u64)]


IORING_ZCRX_AREA_SHIFT = 48
IORING_ZCRX_AREA_MASK = ~((1 << IORING_ZCRX_AREA_SHIFT) - 1) & ((1 << 64) - 1)


class io_uring_zcrx_offsets(ctypes.Structure):
    _fields_ = [
        ("head", _u32),
        ("tail", _u32),
        ("rqes", _u32),
        ("__resv2", _u32),
        ("__resv", _u64 * 2),
    ]


class IoUringZcrxArea(enum.IntFlag):
    """``enum io_uring_zcrx_area_flags``."""

    IORING_ZCRX_AREA_DMABUF = 1


class io_uring_zcrx_area_reg(ctypes.Structure):
    _fields_ = [
        ("addr", _u64),
        ("len", _u64),
        ("rq_area_token", _u64),
        ("flags", _u32),
        ("dmabuf_fd", _u32),
        ("__resv2", _u64 * 2),
    ]


class io_uring_zcrx_ifq_reg(ctypes.Structure):
    """Argument of IORING_REGISTER_ZCRX_IFQ."""

    _fields_ = [
        ("if_idx", _u32),
        ("if_rxq", _u32),
        ("rq_entries", _u32),
        ("flags", _u32),
        ("area_ptr", _u64),
        ("region_ptr", _u64),
        ("offsets", io_uring_zcrx_offsets),
        ("zcrx_id", _u32),
        ("__resv2", _u32),
        ("__resv", _u64 * 3),
    ]


# ---------------------------------------------------------------------------
# Every constant under its own name, as C code spells it (IORING_OP_READ, not
# IoringOp.IORING_OP_READ).  Written out, not generated at import, so that
# type checkers and readers see them; tests/test_abi.py checks that each
# enum member is here and is the member itself.

# IosqeBit
IOSQE_FIXED_FILE_BIT = IosqeBit.IOSQE_FIXED_FILE_BIT
IOSQE_IO_DRAIN_BIT = IosqeBit.IOSQE_IO_DRAIN_BIT
IOSQE_IO_LINK_BIT = IosqeBit.IOSQE_IO_LINK_BIT
IOSQE_IO_HARDLINK_BIT = IosqeBit.IOSQE_IO_HARDLINK_BIT
IOSQE_ASYNC_BIT = IosqeBit.IOSQE_ASYNC_BIT
IOSQE_BUFFER_SELECT_BIT = IosqeBit.IOSQE_BUFFER_SELECT_BIT
IOSQE_CQE_SKIP_SUCCESS_BIT = IosqeBit.IOSQE_CQE_SKIP_SUCCESS_BIT

# IosqeFlags
IOSQE_FIXED_FILE = IosqeFlags.IOSQE_FIXED_FILE
IOSQE_IO_DRAIN = IosqeFlags.IOSQE_IO_DRAIN
IOSQE_IO_LINK = IosqeFlags.IOSQE_IO_LINK
IOSQE_IO_HARDLINK = IosqeFlags.IOSQE_IO_HARDLINK
IOSQE_ASYNC = IosqeFlags.IOSQE_ASYNC
IOSQE_BUFFER_SELECT = IosqeFlags.IOSQE_BUFFER_SELECT
IOSQE_CQE_SKIP_SUCCESS = IosqeFlags.IOSQE_CQE_SKIP_SUCCESS

# IoringSetup
IORING_SETUP_IOPOLL = IoringSetup.IORING_SETUP_IOPOLL
IORING_SETUP_SQPOLL = IoringSetup.IORING_SETUP_SQPOLL
IORING_SETUP_SQ_AFF = IoringSetup.IORING_SETUP_SQ_AFF
IORING_SETUP_CQSIZE = IoringSetup.IORING_SETUP_CQSIZE
IORING_SETUP_CLAMP = IoringSetup.IORING_SETUP_CLAMP
IORING_SETUP_ATTACH_WQ = IoringSetup.IORING_SETUP_ATTACH_WQ
IORING_SETUP_R_DISABLED = IoringSetup.IORING_SETUP_R_DISABLED
IORING_SETUP_SUBMIT_ALL = IoringSetup.IORING_SETUP_SUBMIT_ALL
IORING_SETUP_COOP_TASKRUN = IoringSetup.IORING_SETUP_COOP_TASKRUN
IORING_SETUP_TASKRUN_FLAG = IoringSetup.IORING_SETUP_TASKRUN_FLAG
IORING_SETUP_SQE128 = IoringSetup.IORING_SETUP_SQE128
IORING_SETUP_CQE32 = IoringSetup.IORING_SETUP_CQE32
IORING_SETUP_SINGLE_ISSUER = IoringSetup.IORING_SETUP_SINGLE_ISSUER
IORING_SETUP_DEFER_TASKRUN = IoringSetup.IORING_SETUP_DEFER_TASKRUN
IORING_SETUP_NO_MMAP = IoringSetup.IORING_SETUP_NO_MMAP
IORING_SETUP_REGISTERED_FD_ONLY = IoringSetup.IORING_SETUP_REGISTERED_FD_ONLY
IORING_SETUP_NO_SQARRAY = IoringSetup.IORING_SETUP_NO_SQARRAY
IORING_SETUP_HYBRID_IOPOLL = IoringSetup.IORING_SETUP_HYBRID_IOPOLL
IORING_SETUP_CQE_MIXED = IoringSetup.IORING_SETUP_CQE_MIXED

# IoringOp
IORING_OP_NOP = IoringOp.IORING_OP_NOP
IORING_OP_READV = IoringOp.IORING_OP_READV
IORING_OP_WRITEV = IoringOp.IORING_OP_WRITEV
IORING_OP_FSYNC = IoringOp.IORING_OP_FSYNC
IORING_OP_READ_FIXED = IoringOp.IORING_OP_READ_FIXED
IORING_OP_WRITE_FIXED = IoringOp.IORING_OP_WRITE_FIXED
IORING_OP_POLL_ADD = IoringOp.IORING_OP_POLL_ADD
IORING_OP_POLL_REMOVE = IoringOp.IORING_OP_POLL_REMOVE
IORING_OP_SYNC_FILE_RANGE = IoringOp.IORING_OP_SYNC_FILE_RANGE
IORING_OP_SENDMSG = IoringOp.IORING_OP_SENDMSG
IORING_OP_RECVMSG = IoringOp.IORING_OP_RECVMSG
IORING_OP_TIMEOUT = IoringOp.IORING_OP_TIMEOUT
IORING_OP_TIMEOUT_REMOVE = IoringOp.IORING_OP_TIMEOUT_REMOVE
IORING_OP_ACCEPT = IoringOp.IORING_OP_ACCEPT
IORING_OP_ASYNC_CANCEL = IoringOp.IORING_OP_ASYNC_CANCEL
IORING_OP_LINK_TIMEOUT = IoringOp.IORING_OP_LINK_TIMEOUT
IORING_OP_CONNECT = IoringOp.IORING_OP_CONNECT
IORING_OP_FALLOCATE = IoringOp.IORING_OP_FALLOCATE
IORING_OP_OPENAT = IoringOp.IORING_OP_OPENAT
IORING_OP_CLOSE = IoringOp.IORING_OP_CLOSE
IORING_OP_FILES_UPDATE = IoringOp.IORING_OP_FILES_UPDATE
IORING_OP_STATX = IoringOp.IORING_OP_STATX
IORING_OP_READ = IoringOp.IORING_OP_READ
IORING_OP_WRITE = IoringOp.IORING_OP_WRITE
IORING_OP_FADVISE = IoringOp.IORING_OP_FADVISE
IORING_OP_MADVISE = IoringOp.IORING_OP_MADVISE
IORING_OP_SEND = IoringOp.IORING_OP_SEND
IORING_OP_RECV = IoringOp.IORING_OP_RECV
IORING_OP_OPENAT2 = IoringOp.IORING_OP_OPENAT2
IORING_OP_EPOLL_CTL = IoringOp.IORING_OP_EPOLL_CTL
IORING_OP_SPLICE = IoringOp.IORING_OP_SPLICE
IORING_OP_PROVIDE_BUFFERS = IoringOp.IORING_OP_PROVIDE_BUFFERS
IORING_OP_REMOVE_BUFFERS = IoringOp.IORING_OP_REMOVE_BUFFERS
IORING_OP_TEE = IoringOp.IORING_OP_TEE
IORING_OP_SHUTDOWN = IoringOp.IORING_OP_SHUTDOWN
IORING_OP_RENAMEAT = IoringOp.IORING_OP_RENAMEAT
IORING_OP_UNLINKAT = IoringOp.IORING_OP_UNLINKAT
IORING_OP_MKDIRAT = IoringOp.IORING_OP_MKDIRAT
IORING_OP_SYMLINKAT = IoringOp.IORING_OP_SYMLINKAT
IORING_OP_LINKAT = IoringOp.IORING_OP_LINKAT
IORING_OP_MSG_RING = IoringOp.IORING_OP_MSG_RING
IORING_OP_FSETXATTR = IoringOp.IORING_OP_FSETXATTR
IORING_OP_SETXATTR = IoringOp.IORING_OP_SETXATTR
IORING_OP_FGETXATTR = IoringOp.IORING_OP_FGETXATTR
IORING_OP_GETXATTR = IoringOp.IORING_OP_GETXATTR
IORING_OP_SOCKET = IoringOp.IORING_OP_SOCKET
IORING_OP_URING_CMD = IoringOp.IORING_OP_URING_CMD
IORING_OP_SEND_ZC = IoringOp.IORING_OP_SEND_ZC
IORING_OP_SENDMSG_ZC = IoringOp.IORING_OP_SENDMSG_ZC
IORING_OP_READ_MULTISHOT = IoringOp.IORING_OP_READ_MULTISHOT
IORING_OP_WAITID = IoringOp.IORING_OP_WAITID
IORING_OP_FUTEX_WAIT = IoringOp.IORING_OP_FUTEX_WAIT
IORING_OP_FUTEX_WAKE = IoringOp.IORING_OP_FUTEX_WAKE
IORING_OP_FUTEX_WAITV = IoringOp.IORING_OP_FUTEX_WAITV
IORING_OP_FIXED_FD_INSTALL = IoringOp.IORING_OP_FIXED_FD_INSTALL
IORING_OP_FTRUNCATE = IoringOp.IORING_OP_FTRUNCATE
IORING_OP_BIND = IoringOp.IORING_OP_BIND
IORING_OP_LISTEN = IoringOp.IORING_OP_LISTEN
IORING_OP_RECV_ZC = IoringOp.IORING_OP_RECV_ZC
IORING_OP_EPOLL_WAIT = IoringOp.IORING_OP_EPOLL_WAIT
IORING_OP_READV_FIXED = IoringOp.IORING_OP_READV_FIXED
IORING_OP_WRITEV_FIXED = IoringOp.IORING_OP_WRITEV_FIXED
IORING_OP_PIPE = IoringOp.IORING_OP_PIPE
IORING_OP_LAST = IoringOp.IORING_OP_LAST

# IoringUringCmd
IORING_URING_CMD_FIXED = IoringUringCmd.IORING_URING_CMD_FIXED
IORING_URING_CMD_MULTISHOT = IoringUringCmd.IORING_URING_CMD_MULTISHOT

# IoringFsync
IORING_FSYNC_DATASYNC = IoringFsync.IORING_FSYNC_DATASYNC

# IoringTimeout
IORING_TIMEOUT_ABS = IoringTimeout.IORING_TIMEOUT_ABS
IORING_TIMEOUT_UPDATE = IoringTimeout.IORING_TIMEOUT_UPDATE
IORING_TIMEOUT_BOOTTIME = IoringTimeout.IORING_TIMEOUT_BOOTTIME
IORING_TIMEOUT_REALTIME = IoringTimeout.IORING_TIMEOUT_REALTIME
IORING_LINK_TIMEOUT_UPDATE = IoringTimeout.IORING_LINK_TIMEOUT_UPDATE
IORING_TIMEOUT_ETIME_SUCCESS = IoringTimeout.IORING_TIMEOUT_ETIME_SUCCESS
IORING_TIMEOUT_MULTISHOT = IoringTimeout.IORING_TIMEOUT_MULTISHOT

# IoringPoll
IORING_POLL_ADD_MULTI = IoringPoll.IORING_POLL_ADD_MULTI
IORING_POLL_UPDATE_EVENTS = IoringPoll.IORING_POLL_UPDATE_EVENTS
IORING_POLL_UPDATE_USER_DATA = IoringPoll.IORING_POLL_UPDATE_USER_DATA
IORING_POLL_ADD_LEVEL = IoringPoll.IORING_POLL_ADD_LEVEL

# IoringAsyncCancel
IORING_ASYNC_CANCEL_ALL = IoringAsyncCancel.IORING_ASYNC_CANCEL_ALL
IORING_ASYNC_CANCEL_FD = IoringAsyncCancel.IORING_ASYNC_CANCEL_FD
IORING_ASYNC_CANCEL_ANY = IoringAsyncCancel.IORING_ASYNC_CANCEL_ANY
IORING_ASYNC_CANCEL_FD_FIXED = IoringAsyncCancel.IORING_ASYNC_CANCEL_FD_FIXED
IORING_ASYNC_CANCEL_USERDATA = IoringAsyncCancel.IORING_ASYNC_CANCEL_USERDATA
IORING_ASYNC_CANCEL_OP = IoringAsyncCancel.IORING_ASYNC_CANCEL_OP

# IoringRecvSend
IORING_RECVSEND_POLL_FIRST = IoringRecvSend.IORING_RECVSEND_POLL_FIRST
IORING_RECV_MULTISHOT = IoringRecvSend.IORING_RECV_MULTISHOT
IORING_RECVSEND_FIXED_BUF = IoringRecvSend.IORING_RECVSEND_FIXED_BUF
IORING_SEND_ZC_REPORT_USAGE = IoringRecvSend.IORING_SEND_ZC_REPORT_USAGE
IORING_RECVSEND_BUNDLE = IoringRecvSend.IORING_RECVSEND_BUNDLE
IORING_SEND_VECTORIZED = IoringRecvSend.IORING_SEND_VECTORIZED

# IoringAccept
IORING_ACCEPT_MULTISHOT = IoringAccept.IORING_ACCEPT_MULTISHOT
IORING_ACCEPT_DONTWAIT = IoringAccept.IORING_ACCEPT_DONTWAIT
IORING_ACCEPT_POLL_FIRST = IoringAccept.IORING_ACCEPT_POLL_FIRST

# IoringMsgRingOp
IORING_MSG_DATA = IoringMsgRingOp.IORING_MSG_DATA
IORING_MSG_SEND_FD = IoringMsgRingOp.IORING_MSG_SEND_FD

# IoringMsgRing
IORING_MSG_RING_CQE_SKIP = IoringMsgRing.IORING_MSG_RING_CQE_SKIP
IORING_MSG_RING_FLAGS_PASS = IoringMsgRing.IORING_MSG_RING_FLAGS_PASS

# IoringFixedFdInstall
IORING_FIXED_FD_NO_CLOEXEC = IoringFixedFdInstall.IORING_FIXED_FD_NO_CLOEXEC

# IoringNop
IORING_NOP_INJECT_RESULT = IoringNop.IORING_NOP_INJECT_RESULT
IORING_NOP_FILE = IoringNop.IORING_NOP_FILE
IORING_NOP_FIXED_FILE = IoringNop.IORING_NOP_FIXED_FILE
IORING_NOP_FIXED_BUFFER = IoringNop.IORING_NOP_FIXED_BUFFER
IORING_NOP_TW = IoringNop.IORING_NOP_TW
IORING_NOP_CQE32 = IoringNop.IORING_NOP_CQE32

# IoringCqeF
IORING_CQE_F_BUFFER = IoringCqeF.IORING_CQE_F_BUFFER
IORING_CQE_F_MORE = IoringCqeF.IORING_CQE_F_MORE
IORING_CQE_F_SOCK_NONEMPTY = IoringCqeF.IORING_CQE_F_SOCK_NONEMPTY
IORING_CQE_F_NOTIF = IoringCqeF.IORING_CQE_F_NOTIF
IORING_CQE_F_BUF_MORE = IoringCqeF.IORING_CQE_F_BUF_MORE
IORING_CQE_F_SKIP = IoringCqeF.IORING_CQE_F_SKIP
IORING_CQE_F_32 = IoringCqeF.IORING_CQE_F_32

# IoringOff
IORING_OFF_SQ_RING = IoringOff.IORING_OFF_SQ_RING
IORING_OFF_CQ_RING = IoringOff.IORING_OFF_CQ_RING
IORING_OFF_SQES = IoringOff.IORING_OFF_SQES
IORING_OFF_PBUF_RING = IoringOff.IORING_OFF_PBUF_RING

# IoringSqFlags
IORING_SQ_NEED_WAKEUP = IoringSqFlags.IORING_SQ_NEED_WAKEUP
IORING_SQ_CQ_OVERFLOW = IoringSqFlags.IORING_SQ_CQ_OVERFLOW
IORING_SQ_TASKRUN = IoringSqFlags.IORING_SQ_TASKRUN

# IoringCqFlags
IORING_CQ_EVENTFD_DISABLED = IoringCqFlags.IORING_CQ_EVENTFD_DISABLED

# IoringEnter
IORING_ENTER_GETEVENTS = IoringEnter.IORING_ENTER_GETEVENTS
IORING_ENTER_SQ_WAKEUP = IoringEnter.IORING_ENTER_SQ_WAKEUP
IORING_ENTER_SQ_WAIT = IoringEnter.IORING_ENTER_SQ_WAIT
IORING_ENTER_EXT_ARG = IoringEnter.IORING_ENTER_EXT_ARG
IORING_ENTER_REGISTERED_RING = IoringEnter.IORING_ENTER_REGISTERED_RING
IORING_ENTER_ABS_TIMER = IoringEnter.IORING_ENTER_ABS_TIMER
IORING_ENTER_EXT_ARG_REG = IoringEnter.IORING_ENTER_EXT_ARG_REG
IORING_ENTER_NO_IOWAIT = IoringEnter.IORING_ENTER_NO_IOWAIT

# IoringFeat
IORING_FEAT_SINGLE_MMAP = IoringFeat.IORING_FEAT_SINGLE_MMAP
IORING_FEAT_NODROP = IoringFeat.IORING_FEAT_NODROP
IORING_FEAT_SUBMIT_STABLE = IoringFeat.IORING_FEAT_SUBMIT_STABLE
IORING_FEAT_RW_CUR_POS = IoringFeat.IORING_FEAT_RW_CUR_POS
IORING_FEAT_CUR_PERSONALITY = IoringFeat.IORING_FEAT_CUR_PERSONALITY
IORING_FEAT_FAST_POLL = IoringFeat.IORING_FEAT_FAST_POLL
IORING_FEAT_POLL_32BITS = IoringFeat.IORING_FEAT_POLL_32BITS
IORING_FEAT_SQPOLL_NONFIXED = IoringFeat.IORING_FEAT_SQPOLL_NONFIXED
IORING_FEAT_EXT_ARG = IoringFeat.IORING_FEAT_EXT_ARG
IORING_FEAT_NATIVE_WORKERS = IoringFeat.IORING_FEAT_NATIVE_WORKERS
IORING_FEAT_RSRC_TAGS = IoringFeat.IORING_FEAT_RSRC_TAGS
IORING_FEAT_CQE_SKIP = IoringFeat.IORING_FEAT_CQE_SKIP
IORING_FEAT_LINKED_FILE = IoringFeat.IORING_FEAT_LINKED_FILE
IORING_FEAT_REG_REG_RING = IoringFeat.IORING_FEAT_REG_REG_RING
IORING_FEAT_RECVSEND_BUNDLE = IoringFeat.IORING_FEAT_RECVSEND_BUNDLE
IORING_FEAT_MIN_TIMEOUT = IoringFeat.IORING_FEAT_MIN_TIMEOUT
IORING_FEAT_RW_ATTR = IoringFeat.IORING_FEAT_RW_ATTR
IORING_FEAT_NO_IOWAIT = IoringFeat.IORING_FEAT_NO_IOWAIT

# IoringRegisterOp
IORING_REGISTER_BUFFERS = IoringRegisterOp.IORING_REGISTER_BUFFERS
IORING_UNREGISTER_BUFFERS = IoringRegisterOp.IORING_UNREGISTER_BUFFERS
IORING_REGISTER_FILES = IoringRegisterOp.IORING_REGISTER_FILES
IORING_UNREGISTER_FILES = IoringRegisterOp.IORING_UNREGISTER_FILES
IORING_REGISTER_EVENTFD = IoringRegisterOp.IORING_REGISTER_EVENTFD
IORING_UNREGISTER_EVENTFD = IoringRegisterOp.IORING_UNREGISTER_EVENTFD
IORING_REGISTER_FILES_UPDATE = IoringRegisterOp.IORING_REGISTER_FILES_UPDATE
IORING_REGISTER_EVENTFD_ASYNC = IoringRegisterOp.IORING_REGISTER_EVENTFD_ASYNC
IORING_REGISTER_PROBE = IoringRegisterOp.IORING_REGISTER_PROBE
IORING_REGISTER_PERSONALITY = IoringRegisterOp.IORING_REGISTER_PERSONALITY
IORING_UNREGISTER_PERSONALITY = IoringRegisterOp.IORING_UNREGISTER_PERSONALITY
IORING_REGISTER_RESTRICTIONS = IoringRegisterOp.IORING_REGISTER_RESTRICTIONS
IORING_REGISTER_ENABLE_RINGS = IoringRegisterOp.IORING_REGISTER_ENABLE_RINGS
IORING_REGISTER_FILES2 = IoringRegisterOp.IORING_REGISTER_FILES2
IORING_REGISTER_FILES_UPDATE2 = IoringRegisterOp.IORING_REGISTER_FILES_UPDATE2
IORING_REGISTER_BUFFERS2 = IoringRegisterOp.IORING_REGISTER_BUFFERS2
IORING_REGISTER_BUFFERS_UPDATE = IoringRegisterOp.IORING_REGISTER_BUFFERS_UPDATE
IORING_REGISTER_IOWQ_AFF = IoringRegisterOp.IORING_REGISTER_IOWQ_AFF
IORING_UNREGISTER_IOWQ_AFF = IoringRegisterOp.IORING_UNREGISTER_IOWQ_AFF
IORING_REGISTER_IOWQ_MAX_WORKERS = IoringRegisterOp.IORING_REGISTER_IOWQ_MAX_WORKERS
IORING_REGISTER_RING_FDS = IoringRegisterOp.IORING_REGISTER_RING_FDS
IORING_UNREGISTER_RING_FDS = IoringRegisterOp.IORING_UNREGISTER_RING_FDS
IORING_REGISTER_PBUF_RING = IoringRegisterOp.IORING_REGISTER_PBUF_RING
IORING_UNREGISTER_PBUF_RING = IoringRegisterOp.IORING_UNREGISTER_PBUF_RING
IORING_REGISTER_SYNC_CANCEL = IoringRegisterOp.IORING_REGISTER_SYNC_CANCEL
IORING_REGISTER_FILE_ALLOC_RANGE = IoringRegisterOp.IORING_REGISTER_FILE_ALLOC_RANGE
IORING_REGISTER_PBUF_STATUS = IoringRegisterOp.IORING_REGISTER_PBUF_STATUS
IORING_REGISTER_NAPI = IoringRegisterOp.IORING_REGISTER_NAPI
IORING_UNREGISTER_NAPI = IoringRegisterOp.IORING_UNREGISTER_NAPI
IORING_REGISTER_CLOCK = IoringRegisterOp.IORING_REGISTER_CLOCK
IORING_REGISTER_CLONE_BUFFERS = IoringRegisterOp.IORING_REGISTER_CLONE_BUFFERS
IORING_REGISTER_SEND_MSG_RING = IoringRegisterOp.IORING_REGISTER_SEND_MSG_RING
IORING_REGISTER_ZCRX_IFQ = IoringRegisterOp.IORING_REGISTER_ZCRX_IFQ
IORING_REGISTER_RESIZE_RINGS = IoringRegisterOp.IORING_REGISTER_RESIZE_RINGS
IORING_REGISTER_MEM_REGION = IoringRegisterOp.IORING_REGISTER_MEM_REGION
IORING_REGISTER_QUERY = IoringRegisterOp.IORING_REGISTER_QUERY
IORING_REGISTER_LAST = IoringRegisterOp.IORING_REGISTER_LAST

# IoWqType
IO_WQ_BOUND = IoWqType.IO_WQ_BOUND
IO_WQ_UNBOUND = IoWqType.IO_WQ_UNBOUND

# IoringRegisterCloneFlags
IORING_REGISTER_SRC_REGISTERED = IoringRegisterCloneFlags.IORING_REGISTER_SRC_REGISTERED
IORING_REGISTER_DST_REPLACE = IoringRegisterCloneFlags.IORING_REGISTER_DST_REPLACE

# IouPbufRing
IOU_PBUF_RING_MMAP = IouPbufRing.IOU_PBUF_RING_MMAP
IOU_PBUF_RING_INC = IouPbufRing.IOU_PBUF_RING_INC

# IoUringNapiOp
IO_URING_NAPI_REGISTER_OP = IoUringNapiOp.IO_URING_NAPI_REGISTER_OP
IO_URING_NAPI_STATIC_ADD_ID = IoUringNapiOp.IO_URING_NAPI_STATIC_ADD_ID
IO_URING_NAPI_STATIC_DEL_ID = IoUringNapiOp.IO_URING_NAPI_STATIC_DEL_ID

# IoUringNapiTracking
IO_URING_NAPI_TRACKING_DYNAMIC = IoUringNapiTracking.IO_URING_NAPI_TRACKING_DYNAMIC
IO_URING_NAPI_TRACKING_STATIC = IoUringNapiTracking.IO_URING_NAPI_TRACKING_STATIC
IO_URING_NAPI_TRACKING_INACTIVE = IoUringNapiTracking.IO_URING_NAPI_TRACKING_INACTIVE

# IoringRestriction
IORING_RESTRICTION_REGISTER_OP = IoringRestriction.IORING_RESTRICTION_REGISTER_OP
IORING_RESTRICTION_SQE_OP = IoringRestriction.IORING_RESTRICTION_SQE_OP
IORING_RESTRICTION_SQE_FLAGS_ALLOWED = IoringRestriction.IORING_RESTRICTION_SQE_FLAGS_ALLOWED
IORING_RESTRICTION_SQE_FLAGS_REQUIRED = IoringRestriction.IORING_RESTRICTION_SQE_FLAGS_REQUIRED
IORING_RESTRICTION_LAST = IoringRestriction.IORING_RESTRICTION_LAST

# IoUringSocketOp
SOCKET_URING_OP_SIOCINQ = IoUringSocketOp.SOCKET_URING_OP_SIOCINQ
SOCKET_URING_OP_SIOCOUTQ = IoUringSocketOp.SOCKET_URING_OP_SIOCOUTQ
SOCKET_URING_OP_GETSOCKOPT = IoUringSocketOp.SOCKET_URING_OP_GETSOCKOPT
SOCKET_URING_OP_SETSOCKOPT = IoUringSocketOp.SOCKET_URING_OP_SETSOCKOPT
SOCKET_URING_OP_TX_TIMESTAMP = IoUringSocketOp.SOCKET_URING_OP_TX_TIMESTAMP

# IoUringZcrxArea
IORING_ZCRX_AREA_DMABUF = IoUringZcrxArea.IORING_ZCRX_AREA_DMABUF
