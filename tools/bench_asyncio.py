#!/usr/bin/env python3
"""uring.asyncio against its peers, side by side in one run.

File cells: *tasks* (32) asyncio tasks, each doing 4 KiB random reads from a
hot file (1 GiB by default), for ``--seconds``; IOPS.

  uring.asyncio          AsyncFile.pread on the stock loop, ring attached
  uring.asyncio preadinto  the same into a buffer each task pinned once
  uring loop             AsyncFile.pread on UringEventLoop
  uring loop preadinto   the same, preadinto
  executor               loop.run_in_executor(None, os.pread, ...)
  asyncio future floor   no I/O: each task awaits a future a callback resolves,
                         what asyncio costs per awaited op (the file cells' ceiling)
  urio, urio-backend, uringio
                         the PyPI peers, through tools/asyncio_peers.py under
                         --peers-python (they need Python 3.12+)

Line cells: ``async for line in f`` over a hot file of ~60-byte lines with
every newline kind (--lines-size, 16 MiB), whole, again and again for
``--seconds``; lines per second.  "vs text" is the binary row over the text
row of the same loop: the issue's target is binary iteration in at most 1.5x
the time of text mode (a ratio of at least 0.67x here).

  lines rb / lines r     uring.asyncio.open(path, "rb") / (path, "r"), stock loop
  ... on uring loop      the same on UringEventLoop
  builtin lines rb / r   the builtin open()'s file, iterated synchronously (the
                         interpreter's own speed, for scale)

Echo cells: *conns* (64) loopback TCP connections, each a client that
writes a 64-byte message and waits for the echo before the next, against an
echo server in the same loop; round trips per second.

  asyncio streams        asyncio.start_server/open_connection, stock loop
  uring streams          uring.asyncio.start_server/open_connection, stock loop
  asyncio streams on uring loop, uring streams on uring loop
                         the same on UringEventLoop
  asyncio protocols      loop.create_server/create_connection with protocols
                         (the client writes its next message from data_received)
  uring protocols        uring.asyncio.create_server/create_connection
  ... on uring loop      the same on UringEventLoop

"vs asyncio" is against the stock loop's row of the same kind (streams or
protocols).

Every cell runs in a fresh interpreter; rounds are interleaved, the order
reversed every other round; the page cache is warmed and checked with
mincore before each file cell.  Ratios are taken within a round.

    python3 tools/bench_asyncio.py [--rounds 3] [--seconds 2]
        [--peers-python /path/to/python3.12-with-urio-and-uringio]
        [--against DIR] [--only CELL,...] [--cpu] [--breakdown]

The last column is the issue's targets: for a file cell, the microseconds
per read above the floor cell (the median of the per-round differences of
1e6/rate); for a binary line cell, its rate over the text cell's.

``--breakdown`` runs, instead of the cells, a ladder of steps from the floor
to ``pread`` (each adding one thing: a coroutine layer, a ring request for
a NOP, the kernel's read, the file object, the pooled buffer and the copy),
on both loops, with the C liburing loop of ``tools/c`` on the same file for
scale, and prints what each step adds: where an awaited read's time goes.

``--against DIR`` (a directory holding another ``uring`` package, e.g. the
last commit's: ``git archive HEAD uring | tar -x -C DIR``) runs every cell
chosen a second time with that package, as ``<cell> @against``, in the same
rounds, interleaved; the "vs against" column is this checkout over it,
within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The package measured: this checkout's, or (a cell run for --against) the
# one under $URING_BENCH_ROOT.
sys.path[:0] = [os.environ.get("URING_BENCH_ROOT") or ROOT, HERE]

import pagecache  # noqa: E402
from benchlib import BS, common_arguments, parse_size, run_cell_process, scratch_file  # noqa: E402

FILE_CELLS = ["uring.asyncio", "uring.asyncio preadinto", "uring loop", "uring loop preadinto",
              "executor", "asyncio future floor"]
FLOOR = "asyncio future floor"
PEER_CELLS = ["urio", "urio-backend", "uringio"]
LINE_CELLS = ["lines rb", "lines r", "lines rb on uring loop", "lines r on uring loop",
              "builtin lines rb", "builtin lines r"]
AGAINST = " @against"
ECHO_CELLS = ["asyncio streams", "uring streams", "asyncio streams on uring loop",
              "uring streams on uring loop", "asyncio protocols", "uring protocols",
              "asyncio protocols on uring loop", "uring protocols on uring loop"]


# -- file cells (run in the child) ---------------------------------------------------------

async def _until(deadline: float, op: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> int:
    """Await *op()* in runs of 32 until *deadline*; each result must pass
    *check* (the read really read); returns how many ran."""
    n = 0
    while True:
        for _ in range(32):
            assert check(await op())
        n += 32
        if time.monotonic() >= deadline:
            return n


async def _file_readers(path: str, seconds: float, tasks: int, how: str) -> int:
    import uring
    import uring.asyncio as ua

    blocks = os.path.getsize(path) // BS
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds

    async def one(i: int) -> int:
        rnd = random.Random(i)
        if how == "executor":
            fd = os.open(path, os.O_RDONLY)
            try:
                return await _until(deadline, lambda: loop.run_in_executor(
                    None, os.pread, fd, BS, rnd.randrange(blocks) * BS), lambda d: len(d) == BS)
            finally:
                os.close(fd)
        async with ua.open(path, "rb") as f:
            if how == "preadinto":
                buf = uring.PinnedBuffer(bytearray(BS), writable=True)  # pinned once
                return await _until(deadline, lambda: f.preadinto(buf, rnd.randrange(blocks) * BS),
                                    lambda n: n == BS)
            return await _until(deadline, lambda: f.pread(BS, rnd.randrange(blocks) * BS),
                                lambda d: len(d) == BS)

    return sum(await asyncio.gather(*(one(i) for i in range(tasks))))


def _batched_futures(loop: asyncio.AbstractEventLoop,
                     value: int) -> Callable[[], "asyncio.Future[int]"]:
    """An op that returns a new future, all those made in one loop
    iteration resolved with *value* by one callback in the next: the shape
    of a request's completion, with no I/O."""
    pending: List["asyncio.Future[int]"] = []
    scheduled = [False]

    def resolve_all() -> None:
        scheduled[0] = False
        batch = pending[:]
        pending.clear()
        for fut in batch:
            fut.set_result(value)

    def op() -> "asyncio.Future[int]":
        fut = loop.create_future()
        pending.append(fut)
        if not scheduled[0]:
            scheduled[0] = True
            loop.call_soon(resolve_all)
        return fut

    return op


async def _future_floor(seconds: float, tasks: int) -> int:
    """No I/O at all: each task awaits a future that one callback per loop
    iteration resolves (the shape of a request's completion). What asyncio
    itself costs per awaited operation: the ceiling of any file cell."""
    op = _batched_futures(asyncio.get_running_loop(), 1)
    deadline = time.monotonic() + seconds
    counts = await asyncio.gather(*(_until(deadline, op, lambda r: r == 1) for _ in range(tasks)))
    return sum(counts)


def file_cell(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    import uring.asyncio as ua

    if name == FLOOR:
        start, cpu = time.monotonic(), time.process_time()
        n = asyncio.run(_future_floor(args.seconds, args.tasks))
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
        return {"iops": n / elapsed, "cpu_iops": n / cpu, "reads": n, "seconds": elapsed}

    how = "executor" if name == "executor" else ("preadinto" if name.endswith("preadinto") else "pread")
    runner: Callable[[Any], int] = ua.run if name.startswith("uring loop") else asyncio.run
    start, cpu = time.monotonic(), time.process_time()
    reads = runner(_file_readers(args.file, args.seconds, args.tasks, how))
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return {"iops": reads / elapsed, "cpu_iops": reads / cpu, "reads": reads, "seconds": elapsed,
            "package": os.path.dirname(ua.__file__)}


# -- the breakdown cells (run in the child) -------------------------------------------------

#: ``--breakdown``: where an awaited read's time goes.  Each step runs the
#: file cells' shape (*tasks* tasks, a random block number per op, the
#: result checked) and adds one thing to the step above; the difference of
#: the two (microseconds per op, the median of the per-round differences)
#: is what that thing costs.
BREAKDOWN_STEPS = [
    ("floor", "the harness + asyncio's future round trip (a random block number, a future a "
              "callback resolves, the result checked)"),
    ("coroutine", "+ the op an async def awaiting that future (pread is one)"),
    ("ring nop", "+ a ring request instead of the callback: its SQE staged (LoopRing.start_rw), "
                 "filed with the tick's others (prep_copies), submitted, reaped, dispatched; "
                 "an IORING_OP_NOP"),
    ("ring read", "+ the kernel's 4 KiB read from the page cache instead of the NOP"),
    ("preadinto", "+ AsyncBinaryFile.preadinto's checks (into a buffer pinned once)"),
    ("pread", "+ a pooled pinned buffer and the copy out into the bytes returned"),
]


def breakdown_cell(step: str, uring_loop: bool) -> str:
    return f"bd {step}" + (" on uring loop" if uring_loop else "")


BREAKDOWN_CELLS = [breakdown_cell(step, u) for u in (False, True) for step, _ in BREAKDOWN_STEPS]
C_CELL = "C liburing (kernel + C)"


async def _breakdown(path: str, seconds: float, tasks: int, step: str) -> int:
    import uring
    import uring.asyncio as ua
    from uring import abi

    blocks = os.path.getsize(path) // BS
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    future_op = _batched_futures(loop, BS)

    lr = ua.get_ring()

    async def one(i: int) -> int:
        rnd = random.Random(i)
        async with ua.open(path, "rb") as f:
            fd = f.fileno()
            buf = uring.PinnedBuffer(bytearray(BS), writable=True)
            op: Callable[[], Awaitable[Any]]
            if step == "floor":
                def op() -> Awaitable[Any]:
                    rnd.randrange(blocks)
                    return future_op()
            elif step == "coroutine":
                async def op() -> Any:
                    rnd.randrange(blocks)
                    return await future_op()
            elif step in ("ring nop", "ring read"):
                nop = step == "ring nop"
                opcode = int(abi.IORING_OP_NOP if nop else abi.IORING_OP_READ)

                async def op() -> Any:
                    offset = rnd.randrange(blocks) * BS
                    if lr.awaited >= lr.capacity:
                        await lr.room()
                    if nop:
                        _ud, fut = lr.start_rw(opcode, -1, 0, 0, 0, buf)
                        await fut
                        return BS
                    _ud, fut = lr.start_rw(opcode, fd, buf.address, BS, offset, buf)
                    return (await fut)[1]
            elif step == "preadinto":
                def op() -> Awaitable[Any]:
                    return f.preadinto(buf, rnd.randrange(blocks) * BS)
            else:
                def op() -> Awaitable[Any]:
                    return f.pread(BS, rnd.randrange(blocks) * BS)
            return await _until(deadline, op, lambda r: r == BS or len(r) == BS)

    return sum(await asyncio.gather(*(one(i) for i in range(tasks))))


def breakdown_measure(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    import uring.asyncio as ua

    step = name[len("bd "):].replace(" on uring loop", "")
    runner: Callable[[Any], int] = ua.run if name.endswith("uring loop") else asyncio.run
    start, cpu = time.monotonic(), time.process_time()
    n = runner(_breakdown(args.file, args.seconds, args.tasks, step))
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return {"iops": n / elapsed, "cpu_iops": n / cpu, "reads": n, "seconds": elapsed}


def c_yardstick(args: argparse.Namespace) -> Optional[float]:
    """The C liburing loop of ``tools/c`` on the same file at the same
    depth (4 KiB random reads, refilled as they complete), in IOPS: the
    kernel's share plus C's, if it is built."""
    exe = os.path.join(HERE, "c", "build", "randread_bench")
    if not os.access(exe, os.X_OK):
        return None
    pagecache.ensure_hot(args.file)
    proc = subprocess.run([exe, args.file, str(args.seconds), str(args.tasks)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout)["iops"])


# -- line cells (run in the child) ----------------------------------------------------------

def make_lines_file(path: str, size: int) -> None:
    """About *size* bytes of ASCII lines of 0 to 120 characters, ending in
    "\n", with one in 16 ending in "\r\n" (universal newlines has work
    to do; the binary file splits at the "\n" all the same)."""
    rnd = random.Random(15)
    words = [w.encode() for w in "alpha beta gamma delta epsilon zeta eta theta io uring".split()]
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rnd.choice(words) for _ in range(rnd.randrange(0, 16)))
        out += line + (b"\r\n" if rnd.randrange(16) == 0 else b"\n")
    with open(path, "wb") as f:
        f.write(out)


async def _iterate_lines(path: str, seconds: float, binary: bool) -> int:
    import uring.asyncio as ua

    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        if binary:
            async with ua.open(path, "rb") as f:
                async for _line in f:
                    n += 1
        else:
            async with ua.open(path, "r", encoding="ascii") as t:
                async for _text in t:
                    n += 1
    return n


def _builtin_lines(path: str, seconds: float, binary: bool) -> int:
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        with open(path, "rb") if binary else open(path, encoding="ascii") as f:
            for _line in f:
                n += 1
    return n


def lines_cell(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    import uring.asyncio as ua

    binary = " rb" in name
    start, cpu = time.monotonic(), time.process_time()
    if name.startswith("builtin"):
        n = _builtin_lines(args.lines_file, args.seconds, binary)
    else:
        runner: Callable[[Any], int] = ua.run if name.endswith("uring loop") else asyncio.run
        n = runner(_iterate_lines(args.lines_file, args.seconds, binary))
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return {"lines_per_s": n / elapsed, "cpu_lines_per_s": n / cpu, "lines": n,
            "seconds": elapsed}


# -- echo cells (run in the child) ----------------------------------------------------------

async def _echo(seconds: float, conns: int, msg: int, ours: bool) -> int:
    import uring.asyncio as ua

    start_server = ua.start_server if ours else asyncio.start_server
    open_connection = ua.open_connection if ours else asyncio.open_connection

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readexactly(msg)
                writer.write(data)
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    deadline = time.monotonic() + seconds
    counts = [0] * conns
    payload = bytes(range(msg))

    async def client(i: int) -> None:
        reader, writer = await open_connection("127.0.0.1", port)
        n = 0
        while True:
            for _ in range(16):
                writer.write(payload)
                echoed = await reader.readexactly(msg)
                assert echoed == payload
            n += 16
            if time.monotonic() >= deadline:
                break
        counts[i] = n
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(client(i) for i in range(conns)))
    server.close()
    await server.wait_closed()
    return sum(counts)


async def _echo_protocols(seconds: float, conns: int, msg: int, ours: bool) -> int:
    """The same exchange with protocols instead of streams: the server
    writes back what arrives, each client writes its next message from
    ``data_received`` once the echo of the last one is complete; no task
    switch per message."""
    import uring.asyncio as ua

    loop = asyncio.get_running_loop()
    payload = bytes(range(msg))
    deadline = time.monotonic() + seconds

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.got = 0
            self.count = 0
            self.done = loop.create_future()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            transport.write(payload)

        def data_received(self, data: bytes) -> None:
            self.got += len(data)
            while self.got >= msg:
                self.got -= msg
                self.count += 1
                if self.count % 16 == 0 and time.monotonic() >= deadline:
                    self.transport.close()
                    if not self.done.done():
                        self.done.set_result(self.count)
                    return
                self.transport.write(payload)

        def connection_lost(self, exc: Any) -> None:
            if not self.done.done():
                self.done.set_result(self.count)

    server: Any = await (ua.create_server(Echo, "127.0.0.1", 0) if ours
                         else loop.create_server(Echo, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(conns):
        if ours:
            _t, proto = await ua.create_connection(Client, "127.0.0.1", port)
        else:
            _t, proto = await loop.create_connection(Client, "127.0.0.1", port)
        clients.append(proto)
    counts = await asyncio.gather(*(c.done for c in clients))
    server.close()
    await server.wait_closed()
    return sum(counts)


def echo_cell(name: str, args: argparse.Namespace) -> Dict[str, float]:
    import uring.asyncio as ua

    ours = name.startswith("uring")
    runner: Callable[[Any], int] = ua.run if name.endswith("uring loop") else asyncio.run
    echo = _echo_protocols if "protocols" in name else _echo
    start, cpu = time.monotonic(), time.process_time()
    msgs = runner(echo(args.seconds, args.conns, args.msg, ours))
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
    return {"msgs_per_s": msgs / elapsed, "cpu_msgs_per_s": msgs / cpu, "msgs": msgs,
            "seconds": elapsed}


# -- the parent -----------------------------------------------------------------------------

def measure(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    if name.endswith(AGAINST):  # the same cell with the other package
        os.environ["URING_BENCH_ROOT"] = os.path.abspath(args.against)
        try:
            return measure(name[:-len(AGAINST)], args)
        finally:
            del os.environ["URING_BENCH_ROOT"]
    common = ["--seconds", str(args.seconds), "--tasks", str(args.tasks), "--conns",
              str(args.conns), "--msg", str(args.msg)]
    if name in ECHO_CELLS or name == FLOOR:
        return run_cell_process(__file__, name, common)
    if name == C_CELL:
        iops = c_yardstick(args)
        return {"iops": iops, "cpu_iops": iops} if iops else {"error": "tools/c/build/randread_bench "
                                                                     "is not built"}
    if name in LINE_CELLS:
        frac = pagecache.ensure_hot(args.lines_file)
        got = run_cell_process(__file__, name, ["--lines-file", args.lines_file, *common])
        got["residency"] = frac
        return dict(got)
    frac = pagecache.ensure_hot(args.file)
    if name in PEER_CELLS:
        if not args.peers_python:
            return {"error": "no --peers-python (a Python 3.12+ with urio and uringio)"}
        proc = subprocess.run([args.peers_python, os.path.join(HERE, "asyncio_peers.py"),
                               "--file", args.file, "--seconds", str(args.seconds),
                               "--tasks", str(args.tasks), "--only", name],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
        got = json.loads(proc.stdout).get(name, {"error": "no result"})
    else:
        got = run_cell_process(__file__, name, ["--file", args.file, *common])
    got["residency"] = frac
    return dict(got)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(ap)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--msg", type=int, default=64)
    ap.add_argument("--peers-python", help="a Python 3.12+ with urio and uringio installed")
    ap.add_argument("--lines-size", default="16M", help="the line cells' file size (default 16M)")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead of the cells: where an awaited read's time goes, step by step, "
                         "on both loops, with the C liburing loop for scale")
    ap.add_argument("--lines-file", help=argparse.SUPPRESS)
    ap.add_argument("--only", help="comma-separated cell names")
    ap.add_argument("--cpu", action="store_true",
                    help="rate per second of this process's CPU time, not of the wall clock "
                         "(steadier on a shared machine; the kernel's inline work is counted)")
    ap.add_argument("--against", metavar="DIR",
                    help="also run each cell with the uring package in DIR (same rounds)")
    args = ap.parse_args(argv)

    if args.cell:
        fn = echo_cell if args.cell in ECHO_CELLS else lines_cell if args.cell in LINE_CELLS \
            else breakdown_measure if args.cell in BREAKDOWN_CELLS else file_cell
        print(json.dumps(fn(args.cell, args)))
        return 0

    cells = FILE_CELLS + PEER_CELLS + LINE_CELLS + ECHO_CELLS
    if args.breakdown:
        cells = [FLOOR] + BREAKDOWN_CELLS + [C_CELL]
    elif args.only:
        wanted = [c.strip() for c in args.only.split(",")]
        unknown = [c for c in wanted if c not in cells]
        if unknown:
            ap.error(f"unknown cells: {unknown}; known: {cells}")
        cells = wanted
    if args.against:
        if not os.path.isfile(os.path.join(args.against, "uring", "__init__.py")):
            ap.error(f"--against {args.against}: no uring package there")
        cells = [twin for c in cells
                 for twin in ([c] if c in PEER_CELLS else [c, c + AGAINST])]
    needs_file = any(c.replace(AGAINST, "") not in ECHO_CELLS + LINE_CELLS and c != FLOOR
                     for c in cells)
    samples: Dict[str, List[Dict[str, Any]]] = {c: [] for c in cells}
    keys = ["iops", "msgs_per_s", "lines_per_s"]
    if args.cpu:
        keys = ["cpu_" + k for k in keys]

    def rate_of(got: Dict[str, Any]) -> Optional[float]:
        for k in keys:
            if got.get(k):
                return float(got[k])
        return None

    needs_lines = any(c.replace(AGAINST, "") in LINE_CELLS for c in cells)
    lines_dir = tempfile.mkdtemp(prefix="uring-bench-lines-", dir="/var/tmp") if needs_lines \
        else None
    try:
        if lines_dir is not None:
            args.lines_file = os.path.join(lines_dir, "lines.txt")
            make_lines_file(args.lines_file, parse_size(args.lines_size))
        with scratch_file(args, needs_file):
            for rnd in range(args.rounds):
                order = cells if rnd % 2 == 0 else list(reversed(cells))
                for cell in order:
                    got = measure(cell, args)
                    samples[cell].append(got)
                    rate = rate_of(got)
                    shown = f"{rate / 1e3:8.1f}k" if rate else f"  {got.get('error')}"
                    print(f"# round {rnd + 1} {cell:30s} {shown}", file=sys.stderr)
    finally:
        if lines_dir is not None:
            shutil.rmtree(lines_dir, ignore_errors=True)

    def value(cell: str, i: int) -> Optional[float]:
        return rate_of(samples[cell][i])

    def ratio_col(cell: str, base: str) -> str:
        if base not in samples or cell == base:
            return ""
        rs = []
        for i in range(args.rounds):
            ours, theirs = value(cell, i), value(base, i)
            if ours and theirs:
                rs.append(ours / theirs)
        return f"{statistics.median(rs):.2f}x" if rs else "-"

    def over_floor_col(cell: str, floor: str) -> str:
        """The issue's target (a): microseconds per read above the floor,
        the median of the per-round differences (1e6/rate each)."""
        if floor not in samples or cell == floor:
            return ""
        ds = []
        for i in range(args.rounds):
            ours, theirs = value(cell, i), value(floor, i)
            if ours and theirs:
                ds.append(1e6 / ours - 1e6 / theirs)
        return f"+{statistics.median(ds):.2f}us" if ds else "-"

    print(f"{args.tasks} tasks x 4 KiB random reads, hot {args.file and os.path.basename(args.file)}; "
          f"{args.conns} echo connections x {args.msg} B; {args.seconds:g} s a cell, "
          f"{args.rounds} interleaved rounds (medians; ratios within a round)"
          + ("; rates per CPU second" if args.cpu else ""))
    print(f"{'cell':40s} {'median':>10s}  {'per round':30s} {'vs executor':>12s} {'vs urio':>8s} "
          f"{'vs uringio':>10s} {'vs asyncio':>10s}" + (f" {'vs against':>10s}" if args.against else "")
          + f" {'over floor / vs text':>21s}")
    for cell in cells:
        vals = [value(cell, i) for i in range(args.rounds)]
        rates = [v for v in vals if v]
        med = f"{statistics.median(rates) / 1e3:9.1f}k" if rates else "    n/a"
        per = " ".join(f"{v / 1e3:.0f}k" if v else "-" for v in vals)
        twin = cell.endswith(AGAINST)
        suffix = AGAINST if twin else ""
        plain = cell.replace(AGAINST, "")
        target = ""
        if plain in ECHO_CELLS:
            base = "asyncio protocols" if "protocols" in cell else "asyncio streams"
            cols = ["", "", "", ratio_col(cell, base + suffix)]
        elif plain in LINE_CELLS:
            cols = ["", "", "", ""]
            if " rb" in plain:  # binary over text, same loop: the target (b)
                target = ratio_col(cell, cell.replace(" rb", " r", 1))
        else:
            cols = [ratio_col(cell, "executor" + suffix), ratio_col(cell, "urio"),
                    ratio_col(cell, "uringio"), ""]
            if plain in FILE_CELLS and plain not in ("executor", FLOOR):
                target = over_floor_col(cell, FLOOR + suffix)
        if args.against:
            cols.append("" if twin else ratio_col(cell, cell + AGAINST))
        err = "" if rates else f"  ({samples[cell][0].get('error')})"
        print(f"{cell:40s} {med:>10s}  {per:30s} {cols[0]:>12s} {cols[1]:>8s} {cols[2]:>10s} "
              f"{cols[3]:>10s}" + (f" {cols[4]:>10s}" if args.against else "")
              + f" {target:>21s}" + err)
    if args.breakdown:
        print_breakdown(samples, args.rounds, rate_of)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(samples, fh, indent=1)
    return 0


def print_breakdown(samples: Dict[str, List[Dict[str, Any]]], rounds: int,
                    rate_of: Callable[[Dict[str, Any]], Optional[float]]) -> None:
    """Per loop: each step's microseconds per op and what it adds to the
    step above (the median of the per-round differences)."""
    def us(cell: str, i: int) -> Optional[float]:
        r = rate_of(samples[cell][i]) if cell in samples else None
        return 1e6 / r if r else None

    def median_us(cell: str) -> str:
        vals = [v for v in (us(cell, i) for i in range(rounds)) if v]
        return f"{statistics.median(vals):6.2f}" if vals else "   n/a"

    def added(cell: str, prev: str) -> str:
        ds = [a - b for a, b in ((us(cell, i), us(prev, i)) for i in range(rounds)) if a and b]
        return f"{statistics.median(ds):+6.2f}" if ds else ""

    print()
    print("Where an awaited 4 KiB read's time goes: us per op (median), and what each step "
          "adds to the one above (median of the per-round differences)")
    for uring_loop in (False, True):
        print(f"-- {'UringEventLoop' if uring_loop else 'the stock loop, ring attached'}")
        prev = None
        for step, what in BREAKDOWN_STEPS:
            cell = breakdown_cell(step, uring_loop)
            print(f"  {step:10s} {median_us(cell)}  {added(cell, prev) if prev else '':>6s}  {what}")
            prev = cell
        first, last = breakdown_cell("floor", uring_loop), breakdown_cell("pread", uring_loop)
        print(f"  {'total':10s} {'':6s}  {added(last, first):>6s}  pread over the floor step")
    print(f"  the bench's '{FLOOR}' cell (no random block number): {median_us(FLOOR)} us; "
          f"{C_CELL}: {median_us(C_CELL)} us per read")


if __name__ == "__main__":
    sys.exit(main())
