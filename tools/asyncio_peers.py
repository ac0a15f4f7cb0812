#!/usr/bin/env python3
"""Random 4 KiB reads through two third-party asyncio io_uring packages.

    python tools/asyncio_peers.py --file PATH --seconds S --tasks 32 --bs 4096 \
        [--only urio,uringio]

N concurrent asyncio tasks each read ``--bs`` bytes at block-aligned offsets
drawn uniformly over the whole file, for ``--seconds``; the figure is IOPS
(completed reads / elapsed seconds).  One JSON object goes to stdout, one
entry per measurement (or ``{"error": ...}`` when an entry cannot run):

``urio`` (urio 0.3.0)
    ``f = await urio.open(path, 'rb')`` per task, then per read
    ``await f.seek(off)`` + ``await f.read(bs)``.  ``seek`` only sets the
    file object's offset (and drops its read-ahead buffer); ``read`` with an
    empty buffer is one ``backend.read(fd, offset, bs)`` io_uring submission.
``urio-backend``
    The call the file object makes, without the file object:
    ``await urio.get_backend().read(f.fileno(), off, bs)``.
``uringio`` (uringio 0.4.4)
    Runs on its own loop, ``asyncio.run(main(), loop_factory=uringio.UringioLoop)``;
    ``f = await uringio.open_file(path=path, flags=os.O_RDONLY, mode=0)``
    per task, then ``await f.read(off, bs)`` (signature
    ``read(offset=-1, size=1024, timeout_params=...)``: a positional read).

``--only`` takes package names (``urio`` selects both urio entries) or entry
names.  Each entry runs in its own child process (same interpreter), so a
package that is missing, needs a newer Python, or crashes yields an error
entry instead of killing the run.  The packages need Python >= 3.12.

Every read's length is checked; before the timed phase each task does a few
reads through the same API that are compared byte for byte with
``os.pread``, and after it each task's last read is compared too.  Before
each entry the file is read whole so it sits in the page cache, and the
resident fraction is checked with mincore(2) (via ctypes); below 99% the
entry is reported as an error, since it would measure the disk.

Only the standard library is used, plus the package being measured
(imported lazily in the child).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

ENTRIES = ("urio", "urio-backend", "uringio")
PACKAGE = {"urio": "urio", "urio-backend": "urio", "uringio": "uringio"}
VERIFY_READS = 4  # per task, before the timed phase


# ---------------------------------------------------------------- page cache


def warm(path: str) -> None:
    """Read *path* whole (1 MiB chunks) so its pages are cached."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def residency(path: str) -> float | None:
    """Fraction of *path*'s pages in the page cache (mincore), or None."""
    try:
        import ctypes
        import ctypes.util
        import mmap

        size = os.path.getsize(path)
        if size == 0:
            return 1.0
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        page = mmap.PAGESIZE
        npages = (size + page - 1) // page
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                vec = (ctypes.c_ubyte * npages)()
                if libc.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                    return None
                return sum(b & 1 for b in bytes(vec)) / npages
            finally:
                libc.munmap(ctypes.c_void_p(addr), size)
        finally:
            os.close(fd)
    except Exception:
        return None


# ------------------------------------------------------------ shared harness


class Check:
    """Reference reads with os.pread, shared by the tasks of one entry."""

    def __init__(self, path: str, bs: int):
        self.fd = os.open(path, os.O_RDONLY)
        self.bs = bs
        self.verified = 0

    def compare(self, off: int, data) -> None:
        want = os.pread(self.fd, self.bs, off)
        if len(want) != self.bs:
            raise RuntimeError(f"os.pread returned {len(want)} bytes at {off}")
        if bytes(data) != want:
            raise RuntimeError(
                f"content mismatch at offset {off}: got {len(data)} bytes "
                f"{bytes(data[:8]).hex()}..., want {want[:8].hex()}..."
            )
        self.verified += 1

    def close(self) -> None:
        os.close(self.fd)


async def drive(opener, reader, closer, path, seconds, tasks, bs):
    """Common loop: per task open a handle, verify, then read until the
    deadline.  *reader(handle, off)* must return the bytes read."""
    import asyncio

    size = os.path.getsize(path)
    nblocks = size // bs
    if nblocks < 1:
        raise RuntimeError(f"{path} is smaller than one block ({bs} bytes)")
    check = Check(path, bs)
    handles = [await opener() for _ in range(tasks)]
    try:
        # Verification phase, through the same API, not timed.
        for t, h in enumerate(handles):
            rng = random.Random(1000 + t)
            for _ in range(VERIFY_READS):
                off = rng.randrange(nblocks) * bs
                check.compare(off, await reader(h, off))

        counts = [0] * tasks
        last: list[tuple[int, bytes] | None] = [None] * tasks
        async def worker(t, h, deadline):
            rng = random.Random(t)
            rand = rng.randrange
            clock = time.perf_counter
            n = 0
            data = b""
            off = 0
            while clock() < deadline:
                off = rand(nblocks) * bs
                data = await reader(h, off)
                if len(data) != bs:
                    raise RuntimeError(f"short read: {len(data)} bytes at {off}")
                n += 1
            counts[t] = n
            last[t] = (off, data) if n else None

        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(worker(t, h, deadline) for t, h in enumerate(handles)))
        elapsed = time.perf_counter() - start

        for item in last:
            if item is not None:
                check.compare(*item)
        reads = sum(counts)
        return {
            "iops": round(reads / elapsed, 1),
            "reads": reads,
            "seconds": round(elapsed, 4),
            "verified": check.verified,
        }
    finally:
        for h in handles:
            try:
                await closer(h)
            except Exception:
                pass
        check.close()


# ------------------------------------------------------------------- entries


def run_urio(path, seconds, tasks, bs, via_backend):
    import asyncio

    import urio  # type: ignore[import-not-found]
    import urio.backend  # type: ignore[import-not-found]

    async def main():
        backend = urio.get_backend()

        async def opener():
            return await urio.open(path, "rb")

        async def closer(f):
            await f.close()

        if via_backend:
            read = backend.read

            async def reader(f, off):
                return await read(f.fileno(), off, bs)

            api = (
                f"per task f = await urio.open(path, 'rb'); per read "
                f"await urio.get_backend().read(f.fileno(), off, {bs}) "
                f"[backend {backend.name!r}: {type(backend).__name__}.read -> "
                f"urio.driver.Driver.read -> Ring.submit_read]; stock asyncio loop"
            )
        else:

            async def reader(f, off):
                await f.seek(off)
                return await f.read(bs)

            api = (
                f"per task f = await urio.open(path, 'rb') (AsyncBufferedFile); per read "
                f"await f.seek(off); await f.read({bs}) "
                f"[seek sets the offset only; read = one {type(backend).__name__}.read"
                f"(fd, off, {bs}), backend {backend.name!r}]; stock asyncio loop"
            )
        res = await drive(opener, reader, closer, path, seconds, tasks, bs)
        res["api"] = api
        res["version"] = getattr(urio, "__version__", "?")
        if backend.name != "uring":
            res["warning"] = f"urio is using its {backend.name!r} backend, not io_uring"
        await urio.aclose()
        return res

    return asyncio.run(main())


def run_uringio(path, seconds, tasks, bs):
    import asyncio
    import importlib.metadata

    import uringio  # type: ignore[import-not-found]

    state = {"open": "uringio.open_file(path=path, flags=os.O_RDONLY, mode=0)"}

    async def main():
        async def opener():
            try:
                return await uringio.open_file(path=path, flags=os.O_RDONLY, mode=0)
            except (OSError, TypeError):
                # Fallback: the package default (flags=-1 opens O_RDWR).
                state["open"] = "uringio.open_file(path=path) [O_RDONLY failed]"
                return await uringio.open_file(path=path)

        async def reader(f, off):
            return await f.read(off, bs)

        async def closer(f):
            await f.close()

        return await drive(opener, reader, closer, path, seconds, tasks, bs)

    res = asyncio.run(main(), loop_factory=uringio.UringioLoop)  # type: ignore[call-arg]  # 3.12+
    res["api"] = (
        f"asyncio.run(main(), loop_factory=uringio.UringioLoop); per task "
        f"f = await {state['open']}; per read await f.read(off, {bs}) "
        f"(File.read(offset, size): positional read)"
    )
    try:
        res["version"] = importlib.metadata.version("uringio")
    except Exception:
        pass
    return res


def child(entry, path, seconds, tasks, bs) -> dict:
    pkg = PACKAGE[entry]
    if sys.version_info < (3, 12):
        return {"error": f"{pkg} needs Python >= 3.12 (this is {sys.version.split()[0]})"}
    try:
        __import__(pkg)
    except ImportError as e:
        return {"error": f"not installed: pip install {pkg} ({e})"}
    frac = residency(path)
    if frac is not None and frac < 0.99:
        return {"error": f"only {frac:.1%} of {path} is in the page cache; "
                         "the figure would measure the disk"}
    if entry == "uringio":
        res = run_uringio(path, seconds, tasks, bs)
    else:
        res = run_urio(path, seconds, tasks, bs, via_backend=(entry == "urio-backend"))
    if frac is not None:
        res["cached"] = round(frac, 4)
    return res


# ---------------------------------------------------------------------- main


def select(only: str | None) -> list[str]:
    if not only:
        return list(ENTRIES)
    out = []
    for name in (s.strip() for s in only.split(",")):
        if not name:
            continue
        if name in ENTRIES:
            picked = [name]
        elif name in PACKAGE.values():
            picked = [e for e in ENTRIES if PACKAGE[e] == name]
        else:
            raise SystemExit(f"--only: unknown name {name!r} (choose from "
                             f"{', '.join(ENTRIES)})")
        out += [e for e in picked if e not in out]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", required=True, help="existing file to read")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--bs", type=int, default=4096)
    ap.add_argument("--only", help="comma list: urio, uringio, or entry names "
                                   "urio, urio-backend, uringio")
    ap.add_argument("--no-warm", action="store_true",
                    help="do not read the file whole before each entry")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child:
        try:
            res = child(a.child, a.file, a.seconds, a.tasks, a.bs)
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res))
        return 0

    if not os.path.isfile(a.file):
        print(json.dumps({"error": f"no such file: {a.file}"}))
        return 1
    if a.tasks < 1 or a.bs < 1 or a.seconds <= 0:
        print(json.dumps({"error": "--tasks, --bs and --seconds must be positive"}))
        return 1

    out = {}
    for entry in select(a.only):
        if not a.no_warm:
            warm(a.file)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", entry,
               "--file", a.file, "--seconds", str(a.seconds),
               "--tasks", str(a.tasks), "--bs", str(a.bs)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=a.seconds + 120)
        except subprocess.TimeoutExpired:
            out[entry] = {"error": "timed out"}
            continue
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        try:
            out[entry] = json.loads(line)
        except ValueError:
            tail = (p.stderr.strip().splitlines() or [""])[-1]
            out[entry] = {"error": f"child exited {p.returncode}: {tail}"[:500]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
