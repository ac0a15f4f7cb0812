"""The ABI module against the header.

Two checks, each able to fail on a wrong number:
- every struct size and field offset against the 6.18 header's layout,
  written out here as the spec;
- every constant and layout that the machine's own ``<linux/io_uring.h>``
  (an older kernel's, from linux-libc-dev) also has, against a C program
  compiled from that header at test time: an oracle this module never saw.
"""

from __future__ import annotations

import ctypes
import enum
import os
import pathlib
import re
import shutil
import struct
import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uring import abi

# (struct, size, {field: offset}) from include/uapi/linux/io_uring.h (6.18).
LAYOUT = [
    (abi.io_uring_sqe, 64, dict(
        opcode=0, flags=1, ioprio=2, fd=4, off=8, addr2=8, cmd_op=8, __pad1=12, addr=16,
        splice_off_in=16, level=16, optname=20, len=24, rw_flags=28, fsync_flags=28,
        poll_events=28, poll32_events=28, timeout_flags=28, cancel_flags=28, nop_flags=28,
        pipe_flags=28, user_data=32, buf_index=40, buf_group=40, personality=42,
        splice_fd_in=44, file_index=44, zcrx_ifq_idx=44, optlen=44, addr_len=44, __pad3=46,
        write_stream=44, __pad4=45, addr3=48, __pad2=56, attr_ptr=48, attr_type_mask=56,
        optval=48)),
    (abi.io_uring_sqe128, 128, dict(user_data=32, addr3=48, cmd=64)),
    (abi.io_uring_cqe, 16, dict(user_data=0, res=8, flags=12)),
    (abi.io_uring_cqe32, 32, dict(user_data=0, res=8, flags=12, big_cqe=16)),
    (abi.io_sqring_offsets, 40, dict(head=0, tail=4, ring_mask=8, ring_entries=12, flags=16,
                                     dropped=20, array=24, resv1=28, user_addr=32)),
    (abi.io_cqring_offsets, 40, dict(head=0, tail=4, ring_mask=8, ring_entries=12, overflow=16,
                                     cqes=20, flags=24, resv1=28, user_addr=32)),
    (abi.io_uring_params, 120, dict(sq_entries=0, cq_entries=4, flags=8, sq_thread_cpu=12,
                                    sq_thread_idle=16, features=20, wq_fd=24, resv=28,
                                    sq_off=40, cq_off=80)),
    (abi.io_uring_attr_pi, 32, dict(flags=0, app_tag=2, len=4, addr=8, seed=16, rsvd=24)),
    (abi.io_uring_files_update, 16, dict(offset=0, resv=4, fds=8)),
    (abi.io_uring_region_desc, 64, dict(user_addr=0, size=8, flags=16, id=20, mmap_offset=24,
                                        __resv=32)),
    (abi.io_uring_mem_region_reg, 32, dict(region_uptr=0, flags=8, __resv=16)),
    (abi.io_uring_rsrc_register, 32, dict(nr=0, flags=4, resv2=8, data=16, tags=24)),
    (abi.io_uring_rsrc_update, 16, dict(offset=0, resv=4, data=8)),
    (abi.io_uring_rsrc_update2, 32, dict(offset=0, resv=4, data=8, tags=16, nr=24, resv2=28)),
    (abi.io_uring_probe_op, 8, dict(op=0, resv=1, flags=2, resv2=4)),
    (abi.io_uring_probe, 16, dict(last_op=0, ops_len=1, resv=2, resv2=4)),
    (abi.io_uring_restriction, 16, dict(opcode=0, register_op=2, sqe_op=2, sqe_flags=2,
                                        resv=3, resv2=4)),
    (abi.io_uring_clock_register, 16, dict(clockid=0, __resv=4)),
    (abi.io_uring_clone_buffers, 32, dict(src_fd=0, flags=4, src_off=8, dst_off=12, nr=16,
                                          pad=20)),
    (abi.io_uring_buf, 16, dict(addr=0, len=8, bid=12, resv=14)),
    (abi.io_uring_buf_ring, 16, dict(resv1=0, resv2=8, resv3=12, tail=14)),
    (abi.io_uring_buf_reg, 40, dict(ring_addr=0, ring_entries=8, bgid=12, flags=14, resv=16)),
    (abi.io_uring_buf_status, 40, dict(buf_group=0, head=4, resv=8)),
    (abi.io_uring_napi, 16, dict(busy_poll_to=0, prefer_busy_poll=4, opcode=5, pad=6,
                                 op_param=8, resv=12)),
    (abi.io_uring_reg_wait, 64, dict(ts=0, min_wait_usec=16, flags=20, sigmask=24,
                                     sigmask_sz=32, pad=36, pad2=48)),
    (abi.io_uring_getevents_arg, 24, dict(sigmask=0, sigmask_sz=8, min_wait_usec=12, ts=16)),
    (abi.io_uring_sync_cancel_reg, 64, dict(addr=0, fd=8, flags=12, timeout=16, opcode=32,
                                            pad=33, pad2=40)),
    (abi.io_uring_file_index_range, 16, dict(off=0, len=4, resv=8)),
    (abi.io_uring_recvmsg_out, 16, dict(namelen=0, controllen=4, payloadlen=8, flags=12)),
    (abi.io_uring_zcrx_rqe, 16, dict(off=0, len=8, __pad=12)),
    (abi.io_uring_zcrx_cqe, 16, dict(off=0, __pad=8)),
    (abi.io_uring_zcrx_offsets, 32, dict(head=0, tail=4, rqes=8, __resv2=12, __resv=16)),
    (abi.io_uring_zcrx_area_reg, 48, dict(addr=0, len=8, rq_area_token=16, flags=24,
                                          dmabuf_fd=28, __resv2=32)),
    (abi.io_uring_zcrx_ifq_reg, 96, dict(if_idx=0, if_rxq=4, rq_entries=8, flags=12,
                                         area_ptr=16, region_ptr=24, offsets=32, zcrx_id=64,
                                         __resv2=68, __resv=72)),
    (abi.kernel_timespec, 16, dict(tv_sec=0, tv_nsec=8)),
    (abi.open_how, 24, dict(flags=0, mode=8, resolve=16)),
    (abi.io_timespec, 16, dict(tv_sec=0, tv_nsec=8)),
]


def field_offset(cls: type, name: str) -> int:
    """Offset of *name* in *cls*, through anonymous unions and structs."""
    if name in {f[0] for f in cls._fields_}:
        return getattr(cls, name).offset  # type: ignore[no-any-return]
    for anon in getattr(cls, "_anonymous_", ()):
        inner = dict(cls._fields_)[anon]
        try:
            return getattr(cls, anon).offset + field_offset(inner, name)  # type: ignore[no-any-return]
        except KeyError:
            continue
    raise KeyError(name)


def field_size(cls: type, name: str) -> int:
    """Size of field *name* in *cls*, through anonymous unions and structs."""
    if name in {f[0] for f in cls._fields_}:
        return getattr(cls, name).size  # type: ignore[no-any-return]
    for anon in getattr(cls, "_anonymous_", ()):
        try:
            return field_size(dict(cls._fields_)[anon], name)
        except KeyError:
            continue
    raise KeyError(name)


@pytest.mark.parametrize("cls,size,fields", LAYOUT, ids=[c[0].__name__ for c in LAYOUT])
def test_layout(cls: type, size: int, fields: dict) -> None:
    assert ctypes.sizeof(cls) == size
    for name, offset in fields.items():
        assert field_offset(cls, name) == offset, name
    if name.startswith("__"):
        return
    # every named field is readable as an attribute, union members included
    obj = cls()
    for name in fields:
        getattr(obj, name)


def test_probe_struct_has_ops_after_the_header() -> None:
    p = abi.probe_struct(64)
    assert ctypes.sizeof(p) == 16 + 64 * 8
    assert type(p).ops.offset == 16


# Values the 6.18 header gives, for the groups older headers lack.
NEW_VALUES = {
    "IORING_OP_PIPE": 62, "IORING_OP_LAST": 63, "IORING_RESTRICTION_LAST": 4, "IORING_OP_READV_FIXED": 60,
    "IORING_OP_EPOLL_WAIT": 59, "IORING_OP_RECV_ZC": 58, "IORING_OP_BIND": 56,
    "IORING_SETUP_CQE_MIXED": 1 << 18, "IORING_SETUP_HYBRID_IOPOLL": 1 << 17,
    "IORING_SETUP_NO_SQARRAY": 1 << 16, "IORING_CQE_F_SKIP": 1 << 5, "IORING_CQE_F_32": 1 << 15,
    "IORING_CQE_F_BUF_MORE": 1 << 4, "IORING_ENTER_NO_IOWAIT": 1 << 7,
    "IORING_ENTER_ABS_TIMER": 1 << 5, "IORING_FEAT_NO_IOWAIT": 1 << 17,
    "IORING_FEAT_RW_ATTR": 1 << 16, "IORING_REGISTER_QUERY": 35, "IORING_REGISTER_LAST": 36,
    "IORING_REGISTER_MEM_REGION": 34, "IORING_REGISTER_RESIZE_RINGS": 33,
    "IORING_NOP_CQE32": 1 << 5, "IORING_NOP_TW": 1 << 4, "IORING_SEND_VECTORIZED": 1 << 5,
    "IORING_URING_CMD_MULTISHOT": 1 << 1, "IORING_TIMEOUT_MULTISHOT": 1 << 6,
}


def test_values_new_in_recent_kernels() -> None:
    for name, value in NEW_VALUES.items():
        assert getattr(abi, name) == value, name


def enum_classes() -> list:
    return [v for v in vars(abi).values()
            if isinstance(v, type) and issubclass(v, enum.Enum) and v.__module__ == abi.__name__]


def test_every_member_is_a_module_name_and_nothing_aliases() -> None:
    classes = enum_classes()
    assert len(classes) >= 25
    for cls in classes:
        assert len(cls.__members__) == len(list(cls)), f"{cls.__name__} has aliases"
        for name, member in cls.__members__.items():
            assert getattr(abi, name) is member, name


def test_members_print_by_name() -> None:
    assert repr(abi.IORING_OP_READ) == "<IoringOp.IORING_OP_READ: 22>"
    assert "IORING_SETUP_SQPOLL" in repr(abi.IORING_SETUP_SQPOLL | abi.IORING_SETUP_SQ_AFF)


# --- the oracle: the machine's own header, compiled ---------------------------

HEADER = "/usr/include/linux/io_uring.h"


def header_names() -> set:
    text = open(HEADER).read()
    return set(re.findall(r"\b(IO(?:RING|SQE|_URING|U)_[A-Z0-9_]+|SPLICE_F_FD_IN_FIXED)\b", text))


@pytest.mark.skipif(not shutil.which("cc") or not os.path.exists(HEADER),
                    reason="needs a C compiler and linux-libc-dev's <linux/io_uring.h>")
def test_against_the_system_header(tmp_path: "os.PathLike[str]") -> None:
    present = header_names()
    constants = []
    for cls in enum_classes():
        # "*_LAST" counts the kernel's entries: it differs by version by design
        # (the 6.18 values are in NEW_VALUES).
        constants += [name for name in cls.__members__
                      if name in present and not name.endswith("_LAST")]
    constants += [n for n in ("IORING_CQE_BUFFER_SHIFT", "IORING_OFF_PBUF_SHIFT",
                              "IORING_OFF_MMAP_MASK", "IORING_FILE_INDEX_ALLOC",
                              "IORING_REGISTER_FILES_SKIP", "IO_URING_OP_SUPPORTED",
                              "IORING_RSRC_REGISTER_SPARSE", "SPLICE_F_FD_IN_FIXED",
                              "IORING_NOTIF_USAGE_ZC_COPIED", "IORING_TIMEOUT_CLOCK_MASK",
                              "IORING_TIMEOUT_UPDATE_MASK") if n in present]
    text = open(HEADER).read()
    structs = [cls for cls, _, _ in LAYOUT
               if re.search(r"struct " + cls.__name__ + r" \{", text)]
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/io_uring.h>",
             "int main(void) {"]
    for name in constants:
        lines.append(f'printf("C {name} %lld\\n", (long long)({name}));')
    for cls in structs:
        name = cls.__name__
        lines.append(f'printf("S {name} %zu\\n", sizeof(struct {name}));')
        # Reserved padding (pad*, resv*) is what later kernels carve new
        # fields out of, so its offsets legitimately differ by version.
        fields = [f for f, _ in next(x for x in LAYOUT if x[0] is cls)[2].items()
                  if re.search(r"\b" + re.escape(f) + r"\b", text)
                  and not re.match(r"_*(pad|resv)", f)]
        for f in fields:
            lines.append(f'printf("O {name} {f} %zu %zu\\n", offsetof(struct {name}, {f}), '
                         f'sizeof(((struct {name} *)0)->{f}));')
    lines.append("return 0; }")
    src = os.path.join(os.fspath(tmp_path), "abi.c")
    exe = os.path.join(os.fspath(tmp_path), "abi")
    for _attempt in range(20):
        with open(src, "w") as f:
            f.write("\n".join(lines))
        result = subprocess.run(["cc", "-o", exe, src], capture_output=True, text=True)
        if result.returncode == 0:
            break
        # A field 6.18 has and this older header lacks (or named otherwise):
        # drop exactly the lines the compiler names, and compile again.
        missing = set(re.findall(r"struct (\w+)\W+ has no member named .(\w+).", result.stderr))
        if not missing:
            pytest.fail(f"oracle did not compile: {result.stderr[:2000]}")
        lines = [ln for ln in lines
                 if not any(f'"O {s} {m} ' in ln for s, m in missing)]
    else:
        pytest.fail("oracle did not compile")
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    seen = 0
    for line in out.splitlines():
        kind, *rest = line.split()
        if kind == "C":
            name, value = rest[0], int(rest[1])
            ours = int(getattr(abi, name))
            assert ours == value or ours == value & 0xFFFFFFFF or value == ours - (1 << 64), name
        elif kind == "S":
            assert ctypes.sizeof(getattr(abi, rest[0])) == int(rest[1]), rest[0]
        else:
            cls = getattr(abi, rest[0])
            assert field_offset(cls, rest[1]) == int(rest[2]), f"{rest[0]}.{rest[1]}"
            assert field_size(cls, rest[1]) == int(rest[3]), f"size of {rest[0]}.{rest[1]}"
        seen += 1
    assert seen > 150  # the 6.1 header has most of the ABI


# --- the struct formats: abi.SQE_FORMAT / CQE_FORMAT / CQE32_FORMAT -----------
#
# The ring writes and reads SQEs and CQEs with ``struct``; the ctypes
# structures above are checked against the header.  These tie the two
# together, so a format that drifts from the header (a width, an order, a
# signedness) fails here.

#: The ctypes name of each ``SQE_FIELD_OFFSETS`` entry (the union's first
#: member; ``op_flags`` is the union itself, first member ``rw_flags``).
SQE_CTYPES_NAME = {name: name for name in abi.SQE_FIELD_OFFSETS}
SQE_CTYPES_NAME["op_flags"] = "rw_flags"
#: ``(ctypes field, index)`` of each value of a ``struct`` format, in order:
#: an array field (``__pad2[1]``, ``big_cqe[2]``) is one value per element.
SQE_FIELDS = [(SQE_CTYPES_NAME[name], 0 if name == "__pad2" else None)
              for name in abi.SQE_FIELD_OFFSETS]
CQE_FIELDS = [("user_data", None), ("res", None), ("flags", None)]
CQE32_FIELDS = CQE_FIELDS + [("big_cqe", 0), ("big_cqe", 1)]
FORMATS = [
    ("sqe", abi.SQE_FORMAT, abi.SQE_STRUCT, abi.io_uring_sqe, SQE_FIELDS),
    ("cqe", abi.CQE_FORMAT, abi.CQE_STRUCT, abi.io_uring_cqe, CQE_FIELDS),
    ("cqe32", abi.CQE32_FORMAT, abi.CQE32_STRUCT, abi.io_uring_cqe32, CQE32_FIELDS),
]
FORMAT_IDS = [f[0] for f in FORMATS]


def format_codes(fmt: str) -> str:
    """The one-letter codes of a little-endian format with no repeat counts."""
    assert fmt[0] == "<" and fmt[1:].isalpha(), fmt
    return fmt[1:]


def format_offsets(fmt: str) -> list:
    codes = format_codes(fmt)
    return [struct.calcsize("<" + codes[:i]) for i in range(len(codes))]


_RANGES = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF), "Q": (0, (1 << 64) - 1),
           "b": (-0x80, 0x7F), "h": (-0x8000, 0x7FFF), "i": (-(1 << 31), (1 << 31) - 1),
           "q": (-(1 << 63), (1 << 63) - 1)}


def edges(code: str) -> list:
    """The values of *code* where a width or signedness mismatch shows."""
    lo, hi = _RANGES[code]
    return sorted({v for v in (lo, hi, 0, 1, -1, hi >> 1, (hi >> 1) + 1) if lo <= v <= hi})


def values_for(fmt: str) -> st.SearchStrategy:
    """Tuples of values for *fmt*, each over its code's whole range, its
    edges drawn often."""
    return st.tuples(*(st.one_of(st.sampled_from(edges(c)), st.integers(*_RANGES[c]))
                       for c in format_codes(fmt)))


def read_field(obj: ctypes.Structure, name: str, index: "int | None") -> int:
    value = getattr(obj, name)
    return int(value if index is None else value[index])


def write_field(obj: ctypes.Structure, name: str, index: "int | None", value: int) -> None:
    if index is None:
        setattr(obj, name, value)
    else:
        getattr(obj, name)[index] = value


@pytest.mark.parametrize("label,fmt,packer,cls,fields", FORMATS, ids=FORMAT_IDS)
def test_format_matches_ctypes_layout(label: str, fmt: str, packer: struct.Struct, cls: Any,
                                      fields: list) -> None:
    """Size, then every value of the format at its ctypes field's offset
    and with its size (an array element: the element's size)."""
    assert packer.format == fmt
    assert packer.size == struct.calcsize(fmt) == ctypes.sizeof(cls)
    codes = format_codes(fmt)
    assert len(codes) == len(fields)
    for code, at, (name, index) in zip(codes, format_offsets(fmt), fields):
        descr = getattr(cls, name)
        width = descr.size if index is None else ctypes.sizeof(getattr(cls(), name)._type_)
        assert descr.offset + (index or 0) * width == at, (label, name, index)
        assert struct.calcsize("<" + code) == width, (label, name)


def test_sqe_field_offsets() -> None:
    """``SQE_FIELD_OFFSETS`` names every value of ``SQE_FORMAT``, in order,
    at the format's offsets and at the ctypes field's offset (union members
    through ``getattr(io_uring_sqe, name).offset``; ``op_flags`` is
    ``rw_flags``)."""
    assert list(abi.SQE_FIELD_OFFSETS.values()) == format_offsets(abi.SQE_FORMAT)
    for name, offset in abi.SQE_FIELD_OFFSETS.items():
        assert getattr(abi.io_uring_sqe, SQE_CTYPES_NAME[name]).offset == offset, name
        assert field_offset(abi.io_uring_sqe, SQE_CTYPES_NAME[name]) == offset, name
    assert abi.SQE_FIELD_OFFSETS["op_flags"] == abi.io_uring_sqe.rw_flags.offset == 28
    # The 128-byte SQE starts with the same 64 bytes.
    for name, offset in abi.SQE_FIELD_OFFSETS.items():
        assert getattr(abi.io_uring_sqe128, SQE_CTYPES_NAME[name]).offset == offset, name


def test_sqe_format_signedness() -> None:
    """``off`` is unsigned (-1, the file position, is all ones);
    ``splice_fd_in`` and ``fd`` are signed, as in ctypes."""
    codes = dict(zip(abi.SQE_FIELD_OFFSETS, format_codes(abi.SQE_FORMAT)))
    assert codes["off"] == "Q" and codes["fd"] == "i" and codes["splice_fd_in"] == "i"
    raw = bytearray(abi.SQE_STRUCT.size)
    struct.pack_into("<q", raw, abi.SQE_FIELD_OFFSETS["off"], -1)
    assert abi.SQE_STRUCT.unpack(raw)[list(abi.SQE_FIELD_OFFSETS).index("off")] == (1 << 64) - 1
    assert abi.io_uring_sqe.from_buffer_copy(raw).off == (1 << 64) - 1


@pytest.mark.parametrize("label,fmt,packer,cls,fields", FORMATS, ids=FORMAT_IDS)
def test_format_edges_through_ctypes(label: str, fmt: str, packer: struct.Struct, cls: Any,
                                     fields: list) -> None:
    """Each field at each edge of its range (the rest zero), both ways:
    deterministic, so a signedness mismatch fails every run."""
    codes = format_codes(fmt)
    for i, (code, (name, index)) in enumerate(zip(codes, fields)):
        for value in edges(code):
            values = tuple(value if j == i else 0 for j in range(len(codes)))
            obj = cls.from_buffer_copy(packer.pack(*values))
            assert read_field(obj, name, index) == value, (label, name, index, value)
            obj = cls()
            write_field(obj, name, index, value)
            assert packer.unpack(bytes(obj)) == values, (label, name, index, value)


@pytest.mark.parametrize("label,fmt,packer,cls,fields", FORMATS, ids=FORMAT_IDS)
@given(data=st.data())
def test_format_round_trips_through_ctypes(label: str, fmt: str, packer: struct.Struct,
                                           cls: Any, fields: list, data: st.DataObject) -> None:
    """Random values packed with the format read back through the ctypes
    structure field by field; random values set on the ctypes structure
    unpack with the format to the same values."""
    values = data.draw(values_for(fmt), label="packed")
    obj = cls.from_buffer_copy(packer.pack(*values))
    for (name, index), value in zip(fields, values):
        assert read_field(obj, name, index) == value, (label, name, index)

    values = data.draw(values_for(fmt), label="ctypes")
    obj = cls()
    for (name, index), value in zip(fields, values):
        write_field(obj, name, index, value)
    assert packer.unpack(bytes(obj)) == values


# Source files may not spell an SQE or CQE layout of their own: they use
# abi.SQE_STRUCT / CQE_STRUCT / CQE32_STRUCT (or abi.SQE_FORMAT ...).
FORBIDDEN_LITERALS = ("BBHiQQIIQ", "BBHiqQIIQ", "<QiI")
ROOT = pathlib.Path(__file__).resolve().parent.parent
ABI_PY = ROOT / "uring" / "abi.py"


def format_literals(path: pathlib.Path) -> list:
    text = path.read_text(encoding="utf-8")
    return [lit for lit in FORBIDDEN_LITERALS if lit in text]


def test_the_literal_scan_sees_abi_py() -> None:
    """The scan below would find a literal: abi.py, the one place allowed, has each."""
    assert format_literals(ABI_PY) == ["BBHiQQIIQ", "BBHiqQIIQ", "<QiI"]


def test_no_sqe_or_cqe_format_outside_abi() -> None:
    """No module under uring/ or tools/ but uring/abi.py spells an SQE or
    CQE ``struct`` format."""
    offenders = {}
    for top in ("uring", "tools"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path == ABI_PY:
                continue
            found = format_literals(path)
            if found:
                offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}, f"use abi.SQE_STRUCT / abi.CQE_STRUCT / abi.CQE32_STRUCT: {offenders}"


def test_sqe_head_is_the_first_forty_bytes_of_the_sqe() -> None:
    """``SQE_HEAD_STRUCT`` packs what ``SQE_STRUCT`` packs in its first 40
    bytes (``off`` -1 as the u64 all-ones), the rest being zero."""
    assert abi.SQE_HEAD_STRUCT.size == abi.SQE_FIELD_OFFSETS["buf_index"] == 40
    fields = (22, 3, 7, 9, 4096, 0xDEAD0000, 4096, 5, 0x1234567890)
    whole = abi.SQE_STRUCT.pack(*fields, 0, 0, 0, 0, 0)
    assert abi.SQE_HEAD_STRUCT.pack(*fields) == whole[:40]
    head = abi.SQE_HEAD_STRUCT.pack(22, 0, 0, 9, -1, 0, 0, 0, 1)
    assert head[8:16] == b"\xff" * 8
