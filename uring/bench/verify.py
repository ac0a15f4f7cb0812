"""fio's ``verify``: every block written carries a header that lets a
later read tell whether it came back as it was written.

What fio does: with ``verify=crc32c`` (md5, sha256, ...) each write buffer
starts with a header (magic, checksum type, length, offset, a checksum of
the data); after the write phase (``do_verify=1``, the default) fio reads
back every block it wrote and checks it; a bad block fails the job with
``EILSEQ``, its offset named.  A read-only job with ``verify`` checks
every block it reads (the blocks an earlier job wrote); ``verify_only``
skips the writing and only checks what the same job wrote before.

What this benchmark does: the same, with its own header (fio's on-disk
format is not reproduced, so the two do not verify each other's files)::

    0   magic        b"uRbV"
    4   checksum id  1 byte (VERIFY_IDS), 3 bytes zero
    8   length       u32, the block's length
    12  reserved     u32 zero
    16  offset       u64, the block's file offset
    24  digest       4 (crc32c, crc32), 16 (md5), 20 (sha1), 32 (sha256), 64 (sha512) bytes

all little-endian, then the data.  The digest covers the data after the
header first and then the header's first 24 bytes, so a block moved to
another offset, cut short, or changed anywhere fails.  (Checksumming the
data first lets a writer that reuses a buffer keep the data's checksum
state and only finish it over the 24 header bytes per write.)

crc32c (Castagnoli, the polynomial 0x1EDC6F41 reflected, fio's default
verify) has no implementation in the standard library, so it is computed
here in pure Python: table driven, a 256-entry byte table for short
inputs and, for 4 KiB chunks, the same table folded into 32 parity masks
(bit *b* of the CRC of a chunk is the parity of the chunk's bits under
mask *b*, the CRC being linear), so a chunk costs 32 big-integer ANDs and
popcounts instead of 4096 lookups.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["VERIFY_IDS", "Checker", "Stamper", "crc32c", "header_size"]

_POLY = 0x82F63B78  # 0x1EDC6F41 reflected
_MAGIC = b"uRbV"
_FIXED = struct.Struct("<4sB3xII Q")  # magic, id, length, reserved, offset: 24 bytes
_FIXED_SIZE = _FIXED.size

#: verify= name -> the id byte in the header
VERIFY_IDS: Dict[str, int] = {"crc32c": 1, "crc32": 2, "md5": 3, "sha1": 4, "sha256": 5,
                              "sha512": 6}
_DIGEST = {"crc32c": 4, "crc32": 4, "md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def _byte_table() -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _byte_table()
_CHUNK = 4096
_masks: List[int] = []

try:
    _popcount: Any = int.bit_count  # Python 3.10+
except AttributeError:  # pragma: no cover - Python 3.9
    def _popcount(x: int) -> int:
        return bin(x).count("1")


def _build_masks() -> List[int]:
    """Mask *b*: bit *p* set when a message bit at position *p* (the message
    read as a big-endian integer) flips bit *b* of the CRC.  Position p is
    byte m = p // 8 from the end, bit k = p % 8 of it; its effect is the
    CRC register of that single bit followed by m zero bytes."""
    out = [bytearray(_CHUNK) for _ in range(32)]
    t = _TABLE
    cur = [t[1 << k] for k in range(8)]  # one set bit k, then no more bytes
    for m in range(_CHUNK):
        c0, c1, c2, c3, c4, c5, c6, c7 = cur
        at = _CHUNK - 1 - m
        for b in range(32):
            out[b][at] = (((c0 >> b) & 1) | (((c1 >> b) & 1) << 1) | (((c2 >> b) & 1) << 2)
                          | (((c3 >> b) & 1) << 3) | (((c4 >> b) & 1) << 4)
                          | (((c5 >> b) & 1) << 5) | (((c6 >> b) & 1) << 6)
                          | (((c7 >> b) & 1) << 7))
        cur = [t[r & 255] ^ (r >> 8) for r in cur]  # one more zero byte after it
    return [int.from_bytes(o, "big") for o in out]


def _bytewise(data: Any, reg: int) -> int:
    t = _TABLE
    for byte in bytes(data):
        reg = t[(reg ^ byte) & 255] ^ (reg >> 8)
    return reg


def crc32c(data: Any, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of *data*, continuing from *crc* (the CRC of
    what came before, as ``zlib.crc32`` continues): ``crc32c(b"123456789")
    == 0xE3069283``."""
    global _masks
    view = memoryview(data).cast("B")
    reg = crc ^ 0xFFFFFFFF
    n = len(view)
    at = 0
    if n - at >= 64:
        masks = _masks or _build_masks()
        _masks = masks
        pop = _popcount
        while n - at >= 4:
            size = min(_CHUNK, n - at)
            # the register so far enters as the chunk's first 4 bytes
            # (reflected: its low byte meets the first byte)
            reg_be = int.from_bytes(reg.to_bytes(4, "little"), "big")
            value = int.from_bytes(view[at:at + size], "big") ^ (reg_be << (8 * (size - 4)))
            reg = 0
            for b in range(32):
                reg |= (pop(value & masks[b]) & 1) << b
            at += size
    if at < n:
        reg = _bytewise(view[at:], reg)
    return reg ^ 0xFFFFFFFF


class _Sum:
    """One checksum kind: a running state over the data, finished over the
    header's fixed part into the digest."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.size = _DIGEST[kind]
        if kind == "crc32c":
            crc32c(bytes(_CHUNK))  # the masks built now, not inside a timed loop

    def start(self, data: Any) -> Any:
        if self.kind == "crc32c":
            return crc32c(data)
        if self.kind == "crc32":
            return zlib.crc32(data)
        return hashlib.new(self.kind, data)

    def finish(self, state: Any, tail: bytes) -> bytes:
        if self.kind == "crc32c":
            return crc32c(tail, state).to_bytes(4, "little")
        if self.kind == "crc32":
            return zlib.crc32(tail, state).to_bytes(4, "little")
        h = state.copy()
        h.update(tail)
        return bytes(h.digest())


def header_size(kind: str) -> int:
    """Bytes of the header for checksum *kind* (24 plus the digest)."""
    return _FIXED_SIZE + _DIGEST[kind]


class Stamper:
    """Stamps write buffers.  The data's checksum state is kept per
    (buffer, length) while the data does not change, so a write costs the
    24 header bytes of checksum; ``refill=True`` (refill_buffers) says the
    data just changed."""

    def __init__(self, kind: str) -> None:
        self.sum = _Sum(kind)
        self.ident = VERIFY_IDS[kind]
        self.hsize = header_size(kind)
        self._states: Dict[Tuple[int, int], Any] = {}

    def stamp(self, buf: memoryview, slot: int, offset: int, length: int,
              refill: bool = False) -> None:
        key = (slot, length)
        state = None if refill else self._states.get(key)
        if state is None:
            if refill:
                self._states = {k: v for k, v in self._states.items() if k[0] != slot}
            state = self.sum.start(buf[self.hsize:length])
            self._states[key] = state
        fixed = _FIXED.pack(_MAGIC, self.ident, length, 0, offset)
        buf[:_FIXED_SIZE] = fixed
        buf[_FIXED_SIZE:self.hsize] = self.sum.finish(state, fixed)


class Checker:
    """Checks blocks read back against their headers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sum = _Sum(kind)
        self.ident = VERIFY_IDS[kind]
        self.hsize = header_size(kind)
        self.checked = 0
        self.bad = 0
        self.first: Optional[str] = None
        self.first_offset = -1

    def check(self, buf: Any, offset: int, length: int) -> Optional[str]:
        """None if the block at *offset* is good, else what is wrong."""
        self.checked += 1
        problem = self._problem(memoryview(buf)[:length], offset, length)
        if problem is not None:
            self.bad += 1
            if self.first is None:
                self.first, self.first_offset = problem, offset
        return problem

    def _problem(self, block: memoryview, offset: int, length: int) -> Optional[str]:
        where = f"verify={self.kind}: bad block at offset {offset}, length {length}"
        fixed = bytes(block[:_FIXED_SIZE])
        magic, ident, hlen, _, hoff = _FIXED.unpack(fixed)
        if magic != _MAGIC:
            return f"{where}: bad header magic {magic!r} (not a block written with verify)"
        if ident != self.ident:
            names = {v: k for k, v in VERIFY_IDS.items()}
            return (f"{where}: written with verify={names.get(ident, ident)}, "
                    f"checked with verify={self.kind}")
        if hlen != length:
            return f"{where}: the header says length {hlen}"
        if hoff != offset:
            return f"{where}: the header says offset {hoff} (a misplaced block)"
        want = bytes(block[_FIXED_SIZE:self.hsize])
        got = self.sum.finish(self.sum.start(block[self.hsize:length]), fixed)
        if want != got:
            return f"{where}: checksum {got.hex()}, the header has {want.hex()}"
        return None
