"""Every public entry point fuzzed (issue 13, item 4).

Hypothesis draws hostile values -- wrong types, negatives, huge integers,
NaN/inf, non-contiguous and read-only buffers, closed fds and fds of the
wrong kind, a ``user_data`` still in flight -- for every argument of every
``Ring.prep_*`` (enumerated with ``inspect``), for ``Ring()`` itself, for the
registration calls and for ``uring.block.open_image``.  For each call:

* it raises an exception of a sane class (``TypeError``, ``ValueError``,
  ``OSError``, ``BufferError`` and their subclasses, uring's own errors), or
  it succeeds; never ``struct.error``, ``OverflowError``, ``AttributeError``,
  ``IndexError``, ``KeyError``, ``ZeroDivisionError``, ``SystemError``,
  ``ctypes.ArgumentError`` (or anything else) escaping raw;
* a failed prep leaves no SQE and no request record behind;
* a successful prep holds no silent truncation: an integer no SQE field can
  hold (below ``-2**63`` or from ``2**64``) is never accepted; the SQE's
  ``user_data`` is the one passed; and where an integer argument changes
  the SQE, the same call with that integer plus ``2**32`` (or ``2**16``,
  ``2**8``) must give a different SQE or be refused (the same SQE means the
  value was cut to the field's width);
* the ring is still usable afterwards: a ``prep_nop`` + ``wait`` completes
  and ``sq_ready`` is consistent.

Nothing fuzzed is ever handed to the kernel as it was drawn: every SQE a
prep fills is read back, then rewritten as a NOP under the same
``user_data`` before it is submitted (so a random fd, address or path never
reaches a system call through an SQE).  Setup and registration calls do
reach the kernel, on fresh rings and on the fds this module makes.

The whole session runs in a child process (``python tests/test_fuzz.py
--child ...``), so that a crash is a failed test, not a dead test run: the
parent restarts the child after the entry point it died in, and each entry
point is its own test (``test_fuzz[prep_read]``, ...).  The number of
examples per entry point is the loaded hypothesis profile's
``max_examples`` (conftest: ``ci`` 40, ``long`` 2000).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import inspect
import json
import math
import mmap
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uring
from uring import abi

# -- what counts as a sane refusal ----------------------------------------------

#: Exception classes a bad argument may raise.
SANE = (TypeError, ValueError, OSError, BufferError, uring.errors.RingThreadError)
#: ... and classes that must never escape, even as a subclass of a sane one.
INSANE = (struct.error, OverflowError, AttributeError, IndexError, KeyError,
          ZeroDivisionError, SystemError, ctypes.ArgumentError, AssertionError,
          RecursionError, MemoryError, NameError, UnboundLocalError)

U64 = 1 << 64
S64_MIN = -(1 << 63)


class Finding(AssertionError):
    """A contract of this module broken by the code under test."""


def check_exception(where: str, exc: BaseException) -> None:
    if isinstance(exc, INSANE) or not isinstance(exc, SANE):
        raise Finding(f"{where}: {type(exc).__module__}.{type(exc).__qualname__} escaped: "
                      f"{exc!r}") from exc


def no_field_holds(value: Any) -> bool:
    """An integer no SQE field (at most 64 bits, signed or not) can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and \
        not S64_MIN <= value < U64


# -- the hostile values -----------------------------------------------------------

HUGE = [2**31, 2**32, 2**32 + 3, 2**63, 2**64, 2**64 + 1, -2**31 - 1, -2**63 - 1, -2**63,
        2**16, 2**16 + 1, 256, 2**200, -2**200]
WRONG = [None, "1", "", 1.0, 1.5, math.nan, math.inf, -math.inf, b"1", [1], (1,), {}, True,
         False, object(), 1j]


def bad_values() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(WRONG), st.sampled_from(HUGE),
                     st.integers(-5, -1), st.integers(-2**70, 2**70))


class Env:
    """The fds, buffers and paths this child draws from (made once)."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="uring-fuzz-")
        self.file_path = os.path.join(self.tmp, "data")
        with open(self.file_path, "wb") as f:
            f.write(bytes(range(256)) * 64)
        self.file_fd = os.open(self.file_path, os.O_RDWR)
        self.ro_fd = os.open(self.file_path, os.O_RDONLY)
        self.dir_fd = os.open(self.tmp, os.O_RDONLY | os.O_DIRECTORY)
        self.pipe_r, self.pipe_w = os.pipe()
        self.sock_a, self.sock_b = socket.socketpair()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.efd = os.eventfd(0) if hasattr(os, "eventfd") else self.pipe_w
        self.epoll = __import__("select").epoll()
        self.epfd = self.epoll.fileno()
        # An fd number that is closed (and stays closed: nothing here opens
        # fds after this, except rings, which take the lowest free number;
        # so take a high one).
        self.closed_fd = 900
        with contextlib.suppress(OSError):
            os.close(self.closed_fd)
        self.file_obj = open(self.file_path, "rb")  # noqa: SIM115
        self.other_ring = uring.Ring(4)
        self.fds = [self.file_fd, self.ro_fd, self.dir_fd, self.pipe_r, self.pipe_w,
                    self.sock_a, self.listener, self.udp, self.efd, self.epfd,
                    self.closed_fd, -1, -100, 0x7FFFFFFF, self.file_obj, self.other_ring,
                    self.sock_a.fileno()]
        self.socks = [self.sock_a, self.sock_a.fileno(), self.listener, self.udp,
                      self.file_fd, self.pipe_r, self.closed_fd, -1, self.sock_b]
        self.futex = bytearray(8)

    def buffers(self, writable: bool = False) -> st.SearchStrategy[Any]:
        del writable  # both kinds for every buffer argument
        return st.one_of(
            st.integers(0, 64).map(bytearray),
            st.integers(0, 64).map(lambda n: memoryview(bytearray(n))),
            st.integers(2, 64).map(lambda n: memoryview(bytearray(n))[::2]),
            st.integers(0, 16).map(lambda n: memoryview(bytearray(n * 4)).cast("I")),
            st.binary(max_size=32),
            st.binary(max_size=32).map(memoryview),
            st.just(memoryview(b"read-only")),
            st.just(mmap.mmap(-1, 4096)),
            st.just(bytearray()),
            st.sampled_from(WRONG),
            st.just(__import__("array").array("q", [1, 2, 3])),
        )

    def paths(self) -> st.SearchStrategy[Any]:
        base = self.tmp
        return st.one_of(
            st.sampled_from([os.path.join(base, "a"), os.path.join(base, "data"),
                             os.fsencode(os.path.join(base, "b")),
                             pathlib.Path(base) / "c", "", "rel", "a\0b", b"x\0",
                             os.path.join(base, "x" * 300), "\udcff", 1, None, 1.5,
                             ["a"], "\U0001f600"]),
        )

    def addresses(self) -> st.SearchStrategy[Any]:
        return st.sampled_from([
            ("127.0.0.1", 0), ("127.0.0.1", 80), ("::1", 80), ("::1", 80, 0, 0),
            ("127.0.0.1", 70000), ("127.0.0.1", -1), ("127.0.0.1", 2**64), ("256.1.1.1", 1),
            ("localhost", 80), ("", 0), ("127.0.0.1",), ("127.0.0.1", "80"), (1, 2),
            ("::1", 80, 2**32, 0), ("::1", 80, 0, -1), ("::1", 80, 0, 2**64),
            os.path.join(self.tmp, "sock"), b"\0abstract", "x" * 200, b"", "",
            pathlib.Path(self.tmp) / "sock2", None, 5, 1.5, [("127.0.0.1", 1)],
            ("127.0.0.1", 80.5), ("127.0.0.1", True), ("127.0.0.1\0", 80),
        ])


# -- strategies by parameter ---------------------------------------------------------

SQE_FLAG_VALUES = [0, 1, 2, 4, 8, 16, 32, 64, 0x7F, 0xFF, 0x100, -1, 2**32]


def int_strategy(valid: List[int]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), bad_values())


def strategy_for(env: Env, method: str, param: inspect.Parameter,
                 live_ud: int) -> st.SearchStrategy[Any]:
    name = param.name
    ann = str(param.annotation)
    fds = st.one_of(st.sampled_from(env.fds), bad_values())
    socks = st.one_of(st.sampled_from(env.socks), bad_values())
    if name in ("user_data", "target_user_data", "old_user_data", "new_user_data") \
            and "Sequence" not in ann:
        return st.one_of(st.none(), st.integers(0, 2**64 - 1), st.sampled_from([live_ud] * 3),
                         st.sampled_from([0, 2**64 - 1, 2**63]), bad_values())
    if "Sequence[int]" in ann or name in ("offsets", "lengths", "addrs", "cpus", "tags"):
        # Short lists: a few valid, a few hostile, some of the wrong length.
        return st.one_of(st.lists(st.one_of(st.integers(0, 64), bad_values(), st.just(live_ud)),
                                  max_size=4),
                         st.sampled_from(WRONG), st.just(range(3)))
    if name == "flags" and "int" in ann:
        return st.one_of(st.sampled_from(SQE_FLAG_VALUES), st.just(0), st.just(0), bad_values())
    if ann == "bool" or (name in ("fixed", "multishot", "absolute") and "bool" in ann):
        return st.one_of(st.booleans(), st.booleans(), st.sampled_from([None, 1, 0, "yes", 2]))
    if name in ("sock",):
        return socks
    if name in ("fd", "epfd", "fd_in", "fd_out", "dir_fd", "old_dir_fd", "new_dir_fd", "efd"):
        return fds
    if name == "target_ring":
        return st.one_of(st.sampled_from([env.other_ring, env.other_ring.fd, env.file_fd,
                                          env.closed_fd, 0]), bad_values())
    if name in ("buf", "buffer", "optval") or (name == "data" and "Any" in ann) or \
            name in ("value",) and "Any" in ann:
        return st.one_of(env.buffers(), st.none())
    if name == "futex":
        # (st.builds: hypothesis hashes what st.just holds, and a writable
        # memoryview cannot be hashed.)
        return st.one_of(st.just(env.futex), st.builds(lambda: memoryview(env.futex)[:3]),
                         st.builds(lambda: memoryview(env.futex)[1:5]), env.buffers())
    if name == "size_or_buffer":
        return st.one_of(env.buffers(), st.integers(0, 64), bad_values())
    if name in ("buffers",):
        return st.one_of(st.lists(env.buffers(), max_size=3), env.buffers(), st.sampled_from(WRONG))
    if "PathArg" in ann or name in ("path", "old", "new", "linkpath") or \
            (name == "target" and method == "prep_symlinkat"):
        return env.paths()
    if "Address" in ann or name in ("address", "to"):
        return env.addresses()
    if name == "name":
        return st.sampled_from(["user.fuzz", b"user.fuzz", "", "a" * 300, "user.\0x", None, 1,
                                "\udcff", "trusted.x"])
    if name == "timeout":
        return st.one_of(
            st.sampled_from([0, 0.001, 1, 3600, datetime.timedelta(seconds=1),
                             datetime.timedelta(days=-1), datetime.datetime(2000, 1, 1),
                             datetime.datetime(9999, 1, 1), math.nan, math.inf, -1, -0.5,
                             "1", None, 2**63, 2**64, 1e300, 1e-12, True]),
            st.floats(allow_nan=True, allow_infinity=True))
    if name == "clock":
        return st.sampled_from([None, "monotonic", "boottime", "realtime", "bogus", 1, b"boottime"])
    if name == "how" and method == "prep_openat2":
        return st.sampled_from([None, abi.open_how(), "x", 1])
    if name == "cmd" and "bytes" in ann:
        return st.one_of(st.binary(max_size=100), st.sampled_from(["abc", None, 1, bytearray(4)]))
    if name == "cqe32":
        return st.sampled_from([None, (1, 2), (2**64, 0), (0, -1), (1,), "ab", (1.5, 2)])
    if name in ("decode", "owner", "keep", "target", "records", "sqes", "keeps"):
        return st.sampled_from([None, object(), lambda res: res, 1, "x", [], [None]])
    if name == "fds":
        return st.one_of(st.lists(st.sampled_from(env.fds + [-1, None, "x"]), max_size=3),
                         st.sampled_from(WRONG))
    if name == "waiters":
        return st.one_of(st.lists(st.tuples(st.sampled_from([env.futex, bytearray(3), b"12345678",
                                                             None]),
                                            bad_values(), bad_values()), max_size=2),
                         st.sampled_from(WRONG + [[()], [(env.futex,)]]))
    if name == "ancdata":
        return st.sampled_from([(), [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      struct.pack("i", env.file_fd))],
                                [(1, 2)], [(1, 2, "x")], [(2**40, 1, b"")], None, "x",
                                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"abc")]])
    if name in ("offset", "off_in", "off_out"):
        return int_strategy([0, 1, 4096, -1, 2**63 - 1, 2**64 - 1])
    if name in ("length", "nbytes", "size", "count", "maxevents", "backlog", "ancbufsize",
                "namelen", "expected"):
        return st.one_of(st.none(), int_strategy([0, 1, 16, 4096, 2**31 - 1, 2**32 - 1]))
    if name in ("file_index", "slot", "source_slot", "target_slot", "buf_index", "group",
                "buf_group", "start_id", "personality", "direct"):
        return st.one_of(st.none(), int_strategy([0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFE]))
    if "int" in ann or name in ("opcode", "op", "level", "optname", "events", "mask",
                                "advice", "mode", "res", "data", "how", "domain", "type",
                                "protocol", "idtype", "id", "options", "cmd_op", "ioprio",
                                "addr", "addr3"):
        return st.one_of(st.none(), int_strategy([0, 1, 2, 3, 0x40, 0o644, 0xFFFFFFFF,
                                                  2**63 - 1, 2**64 - 1]))
    # Anything else: the whole hostile zoo.
    return st.one_of(st.none(), bad_values(), env.buffers())


# -- reading the SQEs a prep filled -------------------------------------------------

SQE_FIELDS = [f[0] for f in abi.io_uring_sqe._fields_] if hasattr(abi.io_uring_sqe, "_fields_") \
    else []


def sqe_words(ring: uring.Ring, pos: int) -> bytes:
    return bytes(ring.read_sqe(pos & (ring.sq_entries - 1)))


def sqe_user_data(raw: bytes) -> int:
    return int(struct.unpack_from("<Q", raw, 32)[0])


_ADDRESS_SLOTS = ((16, 8), (8, 8), (48, 8))  # addr, off/addr2, addr3: may hold fresh pointers


def comparable(raw: bytes, noisy: List[Tuple[int, int]]) -> bytes:
    """The SQE without its user_data and the byte ranges *noisy* (fields
    that differ between two identical calls: fresh pointers)."""
    b = bytearray(raw)
    b[32:40] = bytes(8)
    for start, size in noisy:
        b[start:start + size] = bytes(size)
    return bytes(b)


#: What a prep may keep in the SQE flags when it is turned into a NOP.
#: (Not IOSQE_IO_DRAIN: it would wait for the hour-long timeout in flight.)
_KEEP_FLAGS = int(abi.IOSQE_IO_LINK | abi.IOSQE_IO_HARDLINK | abi.IOSQE_ASYNC
                  | abi.IOSQE_CQE_SKIP_SUCCESS)


def defuse(ring: uring.Ring, start: int, stop: int) -> None:
    """Rewrite the SQEs at positions [start, stop) as NOPs with their
    user_data (and harmless SQE flags): nothing drawn reaches the kernel."""
    size = ring.sqe_size
    for pos in range(start, stop):
        slot = pos & (ring.sq_entries - 1)
        raw = bytes(ring.read_sqe(slot))
        nop = bytearray(size)
        nop[0] = int(abi.IORING_OP_NOP)
        nop[1] = raw[1] & _KEEP_FLAGS
        struct.pack_into("<i", nop, 4, -1)
        nop[32:40] = raw[32:40]
        ring.write_sqe(slot, bytes(nop))


def settle(ring: uring.Ring, where: str) -> None:
    """Submit what is prepared (defused), then a marker NOP, and reap until
    the marker comes back: the ring still works."""
    marker = 0xF0F0_F0F0_F0F0_F0F0
    while ring.in_flight_user_data(marker):
        marker += 1
    try:
        ring.prep_nop(marker)
    except Exception as exc:
        raise Finding(f"{where}: the ring refuses a prep_nop afterwards: {exc!r}") from exc
    for _ in range(100):
        got = ring.wait(1, timeout=2)
        if not got:
            raise Finding(f"{where}: no completion within 2 s after the fuzzed call")
        if any(c.user_data == marker for c in got):
            break
    else:
        raise Finding(f"{where}: the marker NOP never came back")
    if ring.sq_ready != 0:
        raise Finding(f"{where}: sq_ready is {ring.sq_ready} after everything was submitted")
    ring.reap()


# -- the prep_* fuzzer ------------------------------------------------------------------

#: Setup of a ring per prep method (an SQE128 ring for command data).
PREP_RING_KW: Dict[str, Dict[str, Any]] = {
    "prep_uring_cmd": {"flags": abi.IORING_SETUP_SQE128 | abi.IORING_SETUP_CQE32},
    "prep_cmd_sock": {"flags": abi.IORING_SETUP_SQE128 | abi.IORING_SETUP_CQE32},
}

LIVE_UD = 0x1177_1177
#: The preps that fill many SQEs (or none) and return a count.
MULTI = frozenset({"prep_nops", "prep_nop_batch", "prep_batch", "prep_reads", "prep_writes",
                   "prep_copies"})


def make_prep_ring(method: str) -> uring.Ring:
    ring = uring.Ring(16, **PREP_RING_KW.get(method, {}))
    # Registered tables, so that fixed=True and buf_index have something.
    ring.register_files([ENV.file_fd, ENV.pipe_r, ENV.sock_a.fileno()])
    ring.register_buffers([bytearray(4096), bytearray(4096)])
    # A request in flight under LIVE_UD: a timeout of an hour.
    ring.prep_timeout(3600, user_data=LIVE_UD)
    ring.submit()
    return ring


def call_prep(ring: uring.Ring, method: str, kwargs: Dict[str, Any]) -> Tuple[bool, Any]:
    try:
        return True, getattr(ring, method)(**kwargs)
    except Exception as exc:  # judged by the caller
        return False, exc


def int_args(kwargs: Dict[str, Any]) -> Dict[str, int]:
    return {k: v for k, v in kwargs.items()
            if isinstance(v, int) and not isinstance(v, bool)}


def int_params(method: str) -> frozenset:
    """The parameters of *method* annotated ``int`` or ``Optional[int]``."""
    sig = inspect.signature(getattr(uring.Ring, method))
    return frozenset(p.name for p in sig.parameters.values()
                     if str(p.annotation) in ("int", "Optional[int]"))


def show(method: str, kwargs: Dict[str, Any]) -> str:
    return f"ring.{method}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def check_prep(ring: uring.Ring, method: str, kwargs: Dict[str, Any]) -> None:
    where = show(method, kwargs)
    before = ring.sq_prepared
    ready = ring.sq_ready
    live_before = set(r.user_data for r in ring.requests_in_flight())
    ok, out = call_prep(ring, method, kwargs)
    after = ring.sq_prepared
    if not ok:
        check_exception(where, out)
        if after != before or ring.sq_ready != ready:
            raise Finding(f"{where} raised {out!r} but left {after - before} SQEs behind "
                          f"(sq_ready {ready} -> {ring.sq_ready})")
        live_after = set(r.user_data for r in ring.requests_in_flight())
        if live_after != live_before:
            raise Finding(f"{where} raised {out!r} but left records behind: "
                          f"{sorted(live_after - live_before)}")
        settle(ring, where)
        return
    try:
        n = after - before
        if n < 1 and method not in MULTI:
            raise Finding(f"{where} returned {out!r} but prepared {n} SQEs")
        if n == 0:
            return  # an empty batch: nothing was written, nothing to judge
        for k, v in kwargs.items():
            if no_field_holds(v):
                raise Finding(f"{where} accepted {k}={v!r}, which no SQE field holds "
                              "(silently truncated)")
            if k in int_params(method) and v is not None and not isinstance(v, int):
                raise Finding(f"{where} accepted {k}={v!r}, a {type(v).__name__} for an int "
                              "(silently converted)")
            if isinstance(v, (list, tuple)):
                for item in v:
                    if no_field_holds(item):
                        raise Finding(f"{where} accepted {item!r} in {k}, which no SQE field "
                                      "holds (silently truncated)")
        uds = kwargs.get("user_data")
        if isinstance(uds, (list, tuple)) and LIVE_UD in uds:
            raise Finding(f"{where} accepted the user_data of a request in flight")
        if n == 1 and method not in MULTI:
            raw = sqe_words(ring, before)
            ud = sqe_user_data(raw)
            if ud != out:
                raise Finding(f"{where} returned user_data {out!r} but its SQE says {ud}")
            given_ud = kwargs.get("user_data")
            if isinstance(given_ud, int) and ud != given_ud:
                raise Finding(f"{where}: SQE user_data {ud} is not the {given_ud} passed")
            if isinstance(given_ud, int) and given_ud == LIVE_UD:
                raise Finding(f"{where} accepted the user_data of a request in flight")
            flags = kwargs.get("flags")
            if isinstance(flags, int) and not isinstance(flags, bool) and raw[1] & flags != flags:
                raise Finding(f"{where}: SQE flags {raw[1]:#x} lost bits of flags={flags:#x}")
    finally:
        defuse(ring, before, ring.sq_prepared)
        settle(ring, where)
    if n == 1 and method not in MULTI:
        check_widths(ring, method, kwargs, raw, where)


def prep_once(ring: uring.Ring, method: str, kwargs: Dict[str, Any]) -> Optional[bytes]:
    """The SQE *kwargs* give (defused and settled), or None if refused."""
    before = ring.sq_prepared
    ok, out = call_prep(ring, method, kwargs)
    if not ok:
        check_exception(show(method, kwargs), out)
        settle(ring, show(method, kwargs))
        return None
    n = ring.sq_prepared - before
    raw = sqe_words(ring, before) if n == 1 else None
    defuse(ring, before, ring.sq_prepared)
    settle(ring, show(method, kwargs))
    return raw


def check_widths(ring: uring.Ring, method: str, kwargs: Dict[str, Any], raw: bytes,
                 where: str) -> None:
    """For each integer argument that changes the SQE: the same call with
    it plus 2**32 / 2**16 / 2**8 must be refused or give another SQE."""
    again = prep_once(ring, method, kwargs)
    if again is None:
        return
    # Fields that differ between two identical calls: fresh pointers.
    noisy = [(s, z) for s, z in _ADDRESS_SLOTS if raw[s:s + z] != again[s:s + z]]
    base = comparable(raw, noisy)
    for name, value in int_args(kwargs).items():
        if name in ("user_data",) or value < 0:
            continue
        other = dict(kwargs, **{name: value ^ 1})
        nudged = prep_once(ring, method, other)
        if nudged is None or comparable(nudged, noisy) == base:
            continue  # the argument does not show in the SQE (or ^1 is refused)
        for width in (32, 16, 8):
            bigger = value + (1 << width)
            if bigger >= U64:
                continue
            wide = prep_once(ring, method, dict(kwargs, **{name: bigger}))
            if wide is not None and comparable(wide, noisy) == base:
                raise Finding(f"{where}: {name}={value} and {name}={bigger} give the same SQE "
                              f"(cut to {width} bits)")


def run_prep(method: str, examples: int) -> None:
    sig = inspect.signature(getattr(uring.Ring, method))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    ring_box: List[uring.Ring] = [make_prep_ring(method)]

    def draw_kwargs(draw: Callable[..., Any]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {}
        for p in params:
            strat = strategy_for(ENV, method, p, LIVE_UD)
            if p.default is not inspect.Parameter.empty:
                if draw(st.integers(0, 2)) == 0:
                    continue  # leave it to its default
            kwargs[p.name] = draw(strat)
        return kwargs

    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        kwargs = draw_kwargs(data.draw)
        ring = ring_box[0]
        check_prep(ring, method, kwargs)
        if not ring.in_flight_user_data(LIVE_UD):
            # A fuzzed prep took LIVE_UD's completion (e.g. a NOP under it).
            ring.close()
            ring_box[0] = make_prep_ring(method)

    try:
        fuzz()
    finally:
        ring_box[0].close()


# -- Ring() ------------------------------------------------------------------------------

_KNOWN_SETUP = [int(v) for k, v in vars(abi).items()
                if k.startswith("IORING_SETUP_") and isinstance(v, int) and v and not v & (v - 1)
                and v < 1 << 31]
#: Set-up bits that make a ring that cannot be driven here (the test only
#: checks they are refused or accepted as documented).
_NEEDS_CARE = int(getattr(abi, "IORING_SETUP_R_DISABLED", 0x40))


def _fits(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_ring(kwargs: Dict[str, Any]) -> None:
    where = f"uring.Ring({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        ring = uring.Ring(**kwargs)
    except Exception as exc:
        check_exception(where, exc)
        flags = kwargs.get("flags", 0)
        if isinstance(exc, OSError) and exc.errno == errno.EINVAL and _fits(flags, 0, 2**32 - 1) \
                and flags & ~sum(_KNOWN_SETUP) and "flag" not in str(exc).lower():
            raise Finding(f"{where}: EINVAL for unknown flag bits does not name the flags: "
                          f"{exc}") from exc
        return
    with ring:
        entries = kwargs.get("entries", 128)
        flags = kwargs.get("flags", 0)
        for name, low, high in (("entries", 1, 2**32 - 1), ("cq_entries", 1, 2**32 - 1),
                                ("sq_thread_idle", 0, 2**32 - 1), ("sq_thread_cpu", 0, 2**32 - 1),
                                ("wq_fd", 0, 2**31 - 1), ("flags", 0, 2**32 - 1)):
            value = kwargs.get(name)
            if value is not None and not _fits(value, low, high):
                raise Finding(f"{where} accepted {name}={value!r} (outside {low}..{high}: "
                              "truncated or misread)")
        if _fits(flags, 0, 2**32 - 1):
            lost = flags & ~int(ring.setup_flags)
            if lost:
                raise Finding(f"{where} succeeded but setup_flags {int(ring.setup_flags):#x} "
                              f"lost {lost:#x}")
        clamp = _fits(flags, 0, 2**32) and flags & int(abi.IORING_SETUP_CLAMP)
        if _fits(entries, 1, 2**32 - 1) and not clamp:
            want = 1 << (entries - 1).bit_length()
            if ring.sq_entries != want:
                raise Finding(f"{where}: sq_entries is {ring.sq_entries}, not {want}")
        cq = kwargs.get("cq_entries")
        if _fits(cq, 1, 2**32 - 1) and not clamp:
            want = 1 << (cq - 1).bit_length()
            if ring.cq_entries != want:
                raise Finding(f"{where}: cq_entries is {ring.cq_entries}, not {want}")
        if int(ring.setup_flags) & _NEEDS_CARE:
            ring.enable()
        try:
            ring.prep_nop(7)
            got = ring.wait(1, timeout=5)
        except Exception as exc:
            check_exception(f"{where} then prep_nop + wait", exc)
            if int(ring.setup_flags) & int(abi.IORING_SETUP_IOPOLL) and isinstance(exc, OSError):
                return  # an IOPOLL ring may refuse a NOP on some kernels
            raise Finding(f"{where}: the new ring cannot run a NOP: {exc!r}") from exc
        if [c.user_data for c in got] != [7] and not int(ring.setup_flags) & int(
                abi.IORING_SETUP_IOPOLL):
            raise Finding(f"{where}: a NOP gave {got!r}")


def run_ring(examples: int) -> None:
    setup_int = st.one_of(st.none(), st.integers(1, 64), bad_values())
    flag_bits = st.lists(st.sampled_from(_KNOWN_SETUP + [1 << 30, 1 << 31, 1 << 29, 1 << 32]),
                         max_size=3).map(sum)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional={
        "entries": st.one_of(st.integers(1, 64), st.integers(1, 64), bad_values(),
                             st.sampled_from([32768, 32769, 1 << 20])),
        "flags": st.one_of(st.just(0), flag_bits, bad_values()),
        "cq_entries": setup_int,
        "sq_thread_idle": st.one_of(st.none(), st.sampled_from([0, 1, 2]), bad_values()),
        "sq_thread_cpu": st.one_of(st.none(), st.sampled_from([0, 1]), bad_values()),
        "wq_fd": st.one_of(st.none(), st.sampled_from([ENV.file_fd, ENV.other_ring.fd,
                                                       ENV.closed_fd]), bad_values()),
        "sq_array": st.one_of(st.booleans(), st.sampled_from([None, 1, "x"])),
        "sq_full": st.sampled_from(["raise", "submit", "wait", "bogus", None, 1]),
        "threadsafe": st.one_of(st.booleans(), st.sampled_from([None, "x"])),
    }))
    def fuzz(kwargs: Dict[str, Any]) -> None:
        flags = kwargs.get("flags", 0)
        if _fits(flags, 0, 2**32 - 1) and flags & int(abi.IORING_SETUP_SQPOLL):
            # A polling kernel thread that never sleeps would eat a CPU of
            # this box while the ring lives: keep its idle short when valid.
            idle = kwargs.get("sq_thread_idle")
            if _fits(idle, 0, 2**32 - 1):
                kwargs["sq_thread_idle"] = min(idle, 2)
        check_ring(kwargs)

    fuzz()


# -- registration calls --------------------------------------------------------------

REGISTER_METHODS = sorted(
    m for m in dir(uring.Ring)
    if (m.startswith(("register_", "unregister_")) or m in (
        "update_files", "update_buffers", "clone_buffers", "set_iowq_max_workers"))
    and callable(getattr(uring.Ring, m))
)


def register_strategy(env: Env, method: str, param: inspect.Parameter) -> st.SearchStrategy[Any]:
    name = param.name
    if name == "files":
        return st.one_of(st.lists(st.sampled_from(env.fds + [None, "x", 1.5, 2**32]), max_size=4),
                         st.sampled_from(WRONG))
    if name == "buffers":
        return st.one_of(st.lists(env.buffers(), max_size=3), st.sampled_from(WRONG))
    if name == "tags":
        return st.one_of(st.none(), st.lists(st.one_of(st.integers(0, 5), bad_values()),
                                             max_size=4), st.sampled_from(WRONG))
    if name == "efd":
        return st.one_of(st.sampled_from([env.efd, env.file_fd, env.closed_fd, -1]), bad_values())
    if name == "src":
        return st.sampled_from([env.other_ring, None, 1, "x"])
    if name in ("cpus", "sqe_ops", "register_ops"):
        return st.one_of(st.lists(st.one_of(st.integers(0, 3), bad_values()), max_size=3),
                         st.sampled_from(WRONG))
    if param.annotation == "bool" or name in ("async_only", "prefer_busy_poll"):
        return st.one_of(st.booleans(), st.sampled_from([None, 2, "x"]))
    return st.one_of(st.none(), int_strategy([0, 1, 2, 4, 8, 16, 64, 4096]))


def check_register(method: str, kwargs: Dict[str, Any]) -> None:
    where = f"ring.{method}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    ring = uring.Ring(8)
    with ring:
        try:
            out = getattr(ring, method)(**kwargs)
        except Exception as exc:
            check_exception(where, exc)
            settle(ring, where)
            return
        for k, v in kwargs.items():
            if no_field_holds(v):
                raise Finding(f"{where} accepted {k}={v!r}, which no kernel field holds")
        if method in ("register_files_sparse", "register_buffers_sparse"):
            got = ring.registered_files if "files" in method else ring.registered_buffers
            if got != kwargs["count"]:
                raise Finding(f"{where}: the table has {got} slots, not {kwargs['count']}")
        if method == "register_buf_ring":
            for k in ("group", "entries", "size"):
                if getattr(out, k) != kwargs[k]:
                    raise Finding(f"{where}: the buffer ring's {k} is {getattr(out, k)}")
        settle(ring, where)


def run_register(method: str, examples: int) -> None:
    sig = inspect.signature(getattr(uring.Ring, method))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if method == "register_buf_ring":
        # entries * size is the pool this maps: keep the valid ones small.
        sizes = st.one_of(st.sampled_from([1, 2, 8, 4096]), bad_values())
        strategies = {"group": int_strategy([0, 1, 0xFFFF]), "entries": sizes, "size": sizes}
    else:
        strategies = {p.name: register_strategy(ENV, method, p) for p in params}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        kwargs: Dict[str, Any] = {}
        for p in params:
            if p.default is not inspect.Parameter.empty and data.draw(st.integers(0, 2)) == 0:
                continue
            kwargs[p.name] = data.draw(strategies[p.name])
        if method == "register_buf_ring":
            e, s = kwargs.get("entries"), kwargs.get("size")
            if _fits(e, 0, U64) and _fits(s, 0, U64) and e * s > 1 << 24:
                kwargs["size"] = 1  # no 16 MiB+ pools: the point is the range checks
        check_register(method, kwargs)

    fuzz()


# -- uring.block.open_image ------------------------------------------------------------------

def check_image(kwargs: Dict[str, Any]) -> None:
    import uring.block

    path = os.path.join(ENV.tmp, "image")
    with open(path, "wb") as f:
        f.truncate(1 << 16)
    where = f"open_image({path!r}, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        image = uring.block.open_image(path, **kwargs)
    except Exception as exc:
        check_exception(where, exc)
        return
    with image:
        qd = kwargs.get("queue_depth", 64)
        if not _fits(qd, 1, 2**32 - 1):
            raise Finding(f"{where} accepted queue_depth={qd!r}")
        mb = kwargs.get("max_batch")
        if mb is not None and not _fits(mb, 0, 2**32 - 1):
            raise Finding(f"{where} accepted max_batch={mb!r}")
        ring = getattr(image.engine, "ring", None)
        if ring is not None and ring.sq_entries < min(qd, 4096):
            raise Finding(f"{where}: the engine's ring has {ring.sq_entries} entries for "
                          f"queue_depth {qd}")
        if image.read_only:
            return
        block = b"\xa5" * 4096
        try:
            image.pwrite(block, 4096)
            back = image.pread(4096, 4096)
        except OSError:
            if image.direct:
                return  # O_DIRECT buffers this test does not align
            raise
        if back != block:
            raise Finding(f"{where}: read back {back[:8]!r}... after writing {block[:8]!r}...")


def run_image(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional={
        "queue_depth": st.one_of(st.integers(1, 64), st.integers(1, 64), bad_values()),
        "aio": st.sampled_from(["auto", "io_uring", "native", "threads", "bogus", None, 1]),
        "cache": st.sampled_from(["writeback", "none", "writethrough", "directsync", "unsafe",
                                  "bogus", None, 1]),
        "read_only": st.one_of(st.booleans(), st.sampled_from([None, "x"])),
        "fixed_files": st.booleans(),
        "fixed_buffers": st.booleans(),
        "sqpoll": st.booleans(),
        "iopoll": st.booleans(),
        "max_batch": st.one_of(st.none(), st.integers(0, 64), bad_values()),
    }))
    def fuzz(kwargs: Dict[str, Any]) -> None:
        check_image(kwargs)

    fuzz()


# -- the child: run targets, one JSON line each --------------------------------------------

DERANDOMIZE = os.environ.get("URING_FUZZ_RANDOM", "") in ("", "0")
ENV: Env = None  # type: ignore[assignment]

PREP_METHODS = sorted(m for m in dir(uring.Ring) if m.startswith("prep_"))
TARGETS = ["Ring"] + PREP_METHODS + REGISTER_METHODS + ["open_image"]


def run_target(target: str, examples: int) -> None:
    if target == "Ring":
        run_ring(examples)
    elif target == "open_image":
        run_image(max(1, examples // 2))
    elif target.startswith("prep_"):
        run_prep(target, examples)
    else:
        run_register(target, max(1, examples // 2))


def child(out_path: str, examples: int, targets: List[str]) -> None:
    global ENV
    ENV = Env()
    with open(out_path, "a") as out:
        for target in targets:
            out.write(json.dumps({"start": target}) + "\n")
            out.flush()
            t0 = time.monotonic()
            try:
                run_target(target, examples)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                text = "".join(traceback.format_exception(exc))
                out.write(json.dumps({"target": target, "ok": False, "error": text,
                                      "seconds": time.monotonic() - t0}) + "\n")
            else:
                out.write(json.dumps({"target": target, "ok": True,
                                      "seconds": time.monotonic() - t0}) + "\n")
            out.flush()


# -- the parent: pytest ------------------------------------------------------------------------

#: Wall-clock cap for one child run (all targets): CI stays bounded.
CHILD_TIMEOUT = 240


def _run_children(examples: int) -> Dict[str, str]:
    """target -> "" (passed) or what went wrong; restarts the child after
    a target it died in."""
    results: Dict[str, str] = {}
    todo = list(TARGETS)
    with tempfile.TemporaryDirectory() as tmp:
        while todo:
            out_path = os.path.join(tmp, f"results-{len(results)}.jsonl")
            proc = subprocess.run(
                [sys.executable, __file__, "--child", out_path, str(examples), *todo],
                capture_output=True, text=True, timeout=CHILD_TIMEOUT,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            started = None
            if os.path.exists(out_path):
                with open(out_path) as f:
                    for line in f:
                        rec = json.loads(line)
                        if "start" in rec:
                            started = rec["start"]
                        else:
                            results[rec["target"]] = "" if rec["ok"] else rec["error"]
                            started = None
            todo = [t for t in todo if t not in results]
            if proc.returncode == 0 and not todo:
                break
            how = (f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exit code {proc.returncode}")
            culprit = started if started is not None else (todo[0] if todo else None)
            if culprit is None:
                break
            results[culprit] = (f"the child process died ({how}) in {culprit}:\n"
                                f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
            todo = [t for t in todo if t != culprit]
    return results


@pytest.fixture(scope="module")
def fuzz_results() -> Dict[str, str]:
    from conftest import require_uring

    require_uring()
    examples = settings.default.max_examples
    return _run_children(examples)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz(fuzz_results: Dict[str, str], target: str) -> None:
    error = fuzz_results.get(target)
    assert error is not None, f"{target} never ran"
    assert not error, error


def test_targets_cover_the_api() -> None:
    """Every prep_* and registration call is a target (a new one is fuzzed
    without being listed by hand), and the strategies know every parameter."""
    assert len(PREP_METHODS) > 50
    assert {"register_files", "register_buffers", "register_buf_ring", "register_eventfd",
            "update_files"} <= set(REGISTER_METHODS)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    child(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
