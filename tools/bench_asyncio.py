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
        [--against DIR]

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
import statistics
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The package measured: this checkout's, or (a cell run for --against) the
# one under $URING_BENCH_ROOT.
sys.path[:0] = [os.environ.get("URING_BENCH_ROOT") or ROOT, HERE]

import pagecache  # noqa: E402
from benchlib import BS, common_arguments, run_cell_process, scratch_file  # noqa: E402

FILE_CELLS = ["uring.asyncio", "uring.asyncio preadinto", "uring loop", "uring loop preadinto",
              "executor", "asyncio future floor"]
FLOOR = "asyncio future floor"
PEER_CELLS = ["urio", "urio-backend", "uringio"]
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


async def _future_floor(seconds: float, tasks: int) -> int:
    """No I/O at all: each task awaits a future that one callback per loop
    iteration resolves (the shape of a request's completion). What asyncio
    itself costs per awaited operation: the ceiling of any file cell."""
    loop = asyncio.get_running_loop()
    pending: List[asyncio.Future] = []
    scheduled = [False]
    deadline = time.monotonic() + seconds

    def resolve_all() -> None:
        scheduled[0] = False
        batch = pending[:]
        pending.clear()
        for fut in batch:
            fut.set_result(1)

    def op() -> asyncio.Future:
        fut = loop.create_future()
        pending.append(fut)
        if not scheduled[0]:
            scheduled[0] = True
            loop.call_soon(resolve_all)
        return fut

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
    ap.add_argument("--only", help="comma-separated cell names")
    ap.add_argument("--cpu", action="store_true",
                    help="rate per second of this process's CPU time, not of the wall clock "
                         "(steadier on a shared machine; the kernel's inline work is counted)")
    ap.add_argument("--against", metavar="DIR",
                    help="also run each cell with the uring package in DIR (same rounds)")
    args = ap.parse_args(argv)

    if args.cell:
        fn = echo_cell if args.cell in ECHO_CELLS else file_cell
        print(json.dumps(fn(args.cell, args)))
        return 0

    cells = FILE_CELLS + PEER_CELLS + ECHO_CELLS
    if args.only:
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
    needs_file = any(c.replace(AGAINST, "") not in ECHO_CELLS and c != FLOOR for c in cells)
    samples: Dict[str, List[Dict[str, Any]]] = {c: [] for c in cells}
    rate_key, echo_key = ("cpu_iops", "cpu_msgs_per_s") if args.cpu else ("iops", "msgs_per_s")
    with scratch_file(args, needs_file):
        for rnd in range(args.rounds):
            order = cells if rnd % 2 == 0 else list(reversed(cells))
            for cell in order:
                got = measure(cell, args)
                samples[cell].append(got)
                rate = got.get(rate_key, got.get(echo_key))
                shown = f"{rate / 1e3:8.1f}k" if rate else f"  {got.get('error')}"
                print(f"# round {rnd + 1} {cell:30s} {shown}", file=sys.stderr)

    def value(cell: str, i: int) -> Optional[float]:
        s = samples[cell][i]
        v = s.get(rate_key, s.get(echo_key))
        return float(v) if v else None

    def ratio_col(cell: str, base: str) -> str:
        if base not in samples or cell == base:
            return ""
        rs = []
        for i in range(args.rounds):
            ours, theirs = value(cell, i), value(base, i)
            if ours and theirs:
                rs.append(ours / theirs)
        return f"{statistics.median(rs):.2f}x" if rs else "-"

    print(f"{args.tasks} tasks x 4 KiB random reads, hot {args.file and os.path.basename(args.file)}; "
          f"{args.conns} echo connections x {args.msg} B; {args.seconds:g} s a cell, "
          f"{args.rounds} interleaved rounds (medians; ratios within a round)"
          + ("; rates per CPU second" if args.cpu else ""))
    print(f"{'cell':40s} {'median':>10s}  {'per round':30s} {'vs executor':>12s} {'vs urio':>8s} "
          f"{'vs uringio':>10s} {'vs asyncio':>10s}" + (f" {'vs against':>10s}" if args.against else ""))
    for cell in cells:
        vals = [value(cell, i) for i in range(args.rounds)]
        rates = [v for v in vals if v]
        med = f"{statistics.median(rates) / 1e3:9.1f}k" if rates else "    n/a"
        per = " ".join(f"{v / 1e3:.0f}k" if v else "-" for v in vals)
        twin = cell.endswith(AGAINST)
        suffix = AGAINST if twin else ""
        if cell.replace(AGAINST, "") in ECHO_CELLS:
            base = "asyncio protocols" if "protocols" in cell else "asyncio streams"
            cols = ["", "", "", ratio_col(cell, base + suffix)]
        else:
            cols = [ratio_col(cell, "executor" + suffix), ratio_col(cell, "urio"),
                    ratio_col(cell, "uringio"), ""]
        if args.against:
            cols.append("" if twin else ratio_col(cell, cell + AGAINST))
        err = "" if rates else f"  ({samples[cell][0].get('error')})"
        print(f"{cell:40s} {med:>10s}  {per:30s} {cols[0]:>12s} {cols[1]:>8s} {cols[2]:>10s} "
              f"{cols[3]:>10s}" + (f" {cols[4]:>10s}" if args.against else "") + err)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(samples, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
