#!/usr/bin/env python3
"""Where the time of one request goes, in nanoseconds of this interpreter.

    python3 tools/bench_breakdown.py [--repeat 30]

Each row is the minimum over *repeat* runs of a timed loop (the minimum is
what the code costs when nothing else on the machine interferes), divided
by the requests it handled.  The prep rows prepare 32 requests and then
take them back unsubmitted, so
no kernel time is in them; the wait rows time ``wait`` on 32 NOPs, whose
kernel work is the least there is.  Beside them, the same steps written
the way the bare yardstick loop writes them (one ``pack_into`` and a tail
bump), so the difference is what the library's layers cost.  (This tool
resets the ring's local SQ tail and table directly, in O(1), to keep the
reset out of the numbers: it measures, it is no example.)
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import timeit
from typing import Callable, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import uring  # noqa: E402
from uring import abi  # noqa: E402
from uring.buffers import export  # noqa: E402
from uring.request import Request  # noqa: E402

N = 32


def per_request(fn: Callable[[], object], repeat: int, per_call: int = N) -> float:
    fn()
    return min(timeit.repeat(fn, number=200, repeat=repeat)) / 200 / per_call * 1e9


def block_rows(repeat: int, arena: bytearray) -> Dict[str, float]:
    """The per-request callback path of ``uring.block`` (``submit_read``
    with a callback), step by step, on ``/dev/zero`` (whose reads cost the
    kernel least), beside the ring's own read round trip above."""
    from ctypes import addressof as _addressof
    from ctypes import c_char as _c_char

    from uring import block
    from uring.block.request import BlockRequest, Op

    rows: Dict[str, float] = {}
    img = block.open_image("/dev/zero", aio="io_uring", queue_depth=N, read_only=True,
                           max_batch=2 * N)
    engine, ring = img.engine, img.engine.ring  # type: ignore[attr-defined]
    views = [memoryview(arena)[i * 4096:(i + 1) * 4096] for i in range(N)]
    offs = [i * 8192 for i in range(N)]

    def callback(req: BlockRequest) -> None:
        pass

    def queued() -> None:
        # submit_read while plugged queues only (max_batch is above N);
        # then the queue is emptied in O(1), nothing staged
        img.plug()
        for i in range(N):
            img.submit_read(views[i], offs[i], callback)
        engine.pending.clear()
        img._outstanding = 0
        engine.plugged -= 1

    img.plug()
    reqs = [img.submit_read(views[i], offs[i], callback) for i in range(N)]  # address taken
    engine.pending.clear()
    img._outstanding = 0
    engine.plugged -= 1

    def staged() -> None:
        engine._issue_many(reqs)
        ring._sqe_tail = ring._sq_published
        ring._requests.clear()

    def whole() -> None:
        with img.plugged():
            for i in range(N):
                img.submit_read(views[i], offs[i], callback)
        img.wait()

    rows["Image.submit_read + callback: all of it, per request"] = per_request(whole, repeat)
    rows["  of which: submit_read, queued"] = per_request(queued, repeat)
    rows["    of which: the view and its address"] = per_request(
        lambda: [_addressof(_c_char.from_buffer(memoryview(v))) for v in views], repeat)
    rows["    of which: BlockRequest()"] = per_request(
        lambda: [BlockRequest(Op.READ, 0, 4096, [v], callback) for v in views], repeat)
    rows["  of which: staged (prep_batch, the ring's record)"] = per_request(staged, repeat)
    img.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    rows: Dict[str, float] = {}
    ring = uring.Ring(64)
    fd = os.open("/dev/zero", os.O_RDONLY)
    arena = bytearray(N * 4096)
    pinned = [uring.PinnedBuffer(memoryview(arena)[i * 4096:(i + 1) * 4096], writable=True)
              for i in range(N)]
    plain = [bytearray(4096) for _ in range(N)]
    uds = list(range(1, N + 1))
    offs = [i * 4096 for i in range(N)]

    def discard() -> None:
        # Back to an empty SQ in O(1) (the package's own discard walks the
        # slots): the local tail to the published one, the records dropped.
        ring._sqe_tail = ring._sq_published
        ring._requests.clear()

    def prep_pinned() -> None:
        p = ring.prep_read
        for i in range(N):
            p(fd, pinned[i], offs[i], uds[i])
        discard()

    def prep_plain() -> None:
        p = ring.prep_read
        for i in range(N):
            p(fd, plain[i], offs[i], uds[i])
        discard()

    def prep_batch() -> None:
        ring.prep_reads(fd, pinned, offs, uds)
        discard()

    def prep_nop() -> None:
        p = ring.prep_nop
        for i in range(N):
            p(uds[i])
        discard()

    def prep_nops() -> None:
        ring.prep_nops(uds)
        discard()

    def discard_only() -> None:
        discard()

    sqes = bytearray(64 * 64)
    pack = abi.SQE_STRUCT.pack_into
    # The yardstick's shape: the first nine fields, the other 24 bytes zero.
    head = struct.Struct(abi.SQE_FORMAT[:10] + "24x").pack_into

    def yard_pack() -> None:
        tail = 0
        for i in range(N):
            head(sqes, (tail & 63) << 6, 22, 0, 0, fd, offs[i], 0, 4096, 0, uds[i])
            tail += 1

    def full_pack() -> None:
        for i in range(N):
            pack(sqes, i << 6, 22, 0, 0, fd, offs[i], 0, 4096, 0, uds[i], 0, 0, 0, 0, 0)

    def records() -> None:
        for i in range(N):
            Request(uds[i], 22, fd, pinned[i])

    def exports() -> None:
        for b in plain:
            export(b, True)

    def pins() -> None:
        for b in plain:
            uring.PinnedBuffer(b, writable=True)

    def wait_raw() -> None:
        ring.prep_nops(uds)
        ring.wait(N, raw=True)

    def wait_cqe() -> None:
        ring.prep_nops(uds)
        ring.wait(N)

    def wait_records() -> None:
        ring.prep_nops(uds)
        ring.reap_records(wait=N)

    rows["discard 32 (subtracted below)"] = per_request(discard_only, args.repeat)
    base = rows["discard 32 (subtracted below)"]
    rows["prep_read, PinnedBuffer reused"] = per_request(prep_pinned, args.repeat) - base
    rows["prep_read, a plain bytearray"] = per_request(prep_plain, args.repeat) - base
    rows["prep_reads (batch of 32), per request"] = per_request(prep_batch, args.repeat) - base
    rows["prep_nop"] = per_request(prep_nop, args.repeat) - base
    rows["prep_nops (batch of 32), per request"] = per_request(prep_nops, args.repeat) - base
    rows["  of which: Request record"] = per_request(records, args.repeat)
    rows["  of which: pack_into, 16 fields"] = per_request(full_pack, args.repeat)
    rows["  of which: export (per-call pin)"] = per_request(exports, args.repeat)
    rows["  PinnedBuffer (pin made per call)"] = per_request(pins, args.repeat)
    rows["yardstick's fill: pack_into 9 fields + tail"] = per_request(yard_pack, args.repeat)
    rows["prep_nops + wait(32, raw=True), per NOP"] = per_request(wait_raw, args.repeat)
    rows["prep_nops + wait(32) as Cqe, per NOP"] = per_request(wait_cqe, args.repeat)
    rows["prep_nops + reap_records(wait=32), per NOP"] = per_request(wait_records, args.repeat)

    def ring_reads() -> None:
        ring.prep_reads(fd, pinned, offs, uds)
        ring.reap_records(wait=N)

    rows["prep_reads + reap_records(wait=32) on /dev/zero"] = per_request(ring_reads, args.repeat)
    rows.update(block_rows(args.repeat, arena))
    os.close(fd)
    ring.close()
    width = max(len(k) for k in rows)
    print(f"{'step':{width}s}  ns per request")
    for k, v in rows.items():
        print(f"{k:{width}s}  {v:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
