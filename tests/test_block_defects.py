"""The block layer's three defects (issue 14), on every engine x cache mode
they apply to, on real files under the real kernel:

1. a completion callback that raises must not cost the rest of its batch;
2. a request an engine cannot run is refused at submit (or, below
   ``Image``, fails alone inside the engine), never hangs or poisons the
   image, and ``close()`` always closes;
3. a write that extends the file leaves the size a plain ``pwrite`` would,
   also through O_DIRECT's read-modify-write.

Every wait runs in a worker thread joined with a timeout (the image is
opened in that thread, which owns it), so a hang fails the test instead of
hanging the suite.  A hypothesis state machine then drives random valid and
invalid requests, failing callbacks, short transfers and errnos from the
fault seam over one engine x cache mode per example, checking the file
against an in-memory model after every step.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import require_uring
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from uring import block
from uring.block import BlockRequest, IoFaults, Op
from uring.block.sysops import aligned_buffer

CACHES = ["writeback", "none", "writethrough", "directsync", "unsafe"]
DIRECT = ("none", "directsync")
COMBOS = ([("io_uring", c) for c in CACHES] + [("native", c) for c in DIRECT]
          + [("threads", c) for c in CACHES])
IDS = [f"{a}-{c}" for a, c in COMBOS]
TIMEOUT = 10.0


class Hung(AssertionError):
    pass


class Runner:
    """One daemon thread that owns the image and runs what it is given;
    ``call`` waits at most *timeout* seconds for it.  After a hang the
    thread is abandoned (stuck, daemon) and every later call fails."""

    def __init__(self) -> None:
        self._jobs: "queue.Queue[Optional[Tuple[Callable[[], Any], queue.Queue]]]" = queue.Queue()
        self.hung = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="block-defects")
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, out = job
            try:
                out.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                out.put((False, exc))

    def call(self, fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        if self.hung:
            raise Hung("an earlier call hung")
        out: "queue.Queue[Tuple[bool, Any]]" = queue.Queue()
        self._jobs.put((fn, out))
        try:
            ok, value = out.get(timeout=timeout)
        except queue.Empty:
            self.hung = True
            raise Hung(f"no answer in {timeout} s: the block layer hangs") from None
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if not self.hung:
            self._jobs.put(None)
            self._thread.join(TIMEOUT)


@pytest.fixture
def runner() -> Iterator[Runner]:
    r = Runner()
    yield r
    r.stop()


def needs(aio: str) -> None:
    if aio == "io_uring":
        require_uring()


def make_file(tmp_path: Any, size: int, name: str = "disk.img") -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    try:  # tmpfs (and some others) refuse O_DIRECT
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"{tmp_path} refuses O_DIRECT")
        raise
    return path


def contents(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class Boom(Exception):
    pass


def combos() -> Any:
    return pytest.mark.parametrize(("aio", "cache"), COMBOS, ids=IDS)


# --- 1. a failing callback keeps the rest of its batch --------------------------------


@combos()
@pytest.mark.parametrize("how", ["wait", "poll"])
def test_failing_callback_keeps_the_rest_of_its_batch(tmp_path: Any, runner: Runner, aio: str,
                                                      cache: str, how: str) -> None:
    needs(aio)
    path = make_file(tmp_path, 64 * 1024)
    expected = contents(path)

    def scenario() -> Dict[str, Any]:
        img = block.open_image(path, aio=aio, cache=cache, queue_depth=16)
        calls: List[int] = []

        def cb(r: BlockRequest) -> None:
            calls.append(r.offset)
            if len(calls) == 1:
                raise Boom("first callback")

        with img.plugged():  # one batch, one submit
            reqs = [img.submit_read(aligned_buffer(4096), i * 4096, cb) for i in range(10)]
        time.sleep(0.2)  # every completion is posted: the next reap takes them all
        raised: Optional[BaseException] = None
        try:
            if how == "wait":
                img.wait()
            else:
                while not raised and not all(r.finished for r in reqs):
                    img.poll()
        except Boom as exc:
            raised = exc
        at_raise = (sum(r.finished for r in reqs), len(calls))
        img.wait()  # the next wait finishes (or has nothing left to do)
        data = [bytes(r.views[0]) for r in reqs]
        values = [r.value() for r in reqs]
        img.close()
        return dict(raised=raised, at_raise=at_raise, calls=sorted(calls), data=data,
                    values=values, closed=img.engine.closed)

    out = runner.call(scenario)
    assert isinstance(out["raised"], Boom)
    assert out["at_raise"] == (10, 10)  # the whole batch delivered before the raise
    assert out["calls"] == [i * 4096 for i in range(10)]  # each callback once
    assert out["values"] == [4096] * 10
    assert out["data"] == [expected[i * 4096:(i + 1) * 4096] for i in range(10)]
    assert out["closed"]


@combos()
def test_several_failing_callbacks_first_raised_rest_logged(
        tmp_path: Any, runner: Runner, aio: str, cache: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Every callback of one batch raises: every request still finishes,
    the wait raises the first exception and logs the others (each one
    raised or logged exactly once), and nothing is lost for the next wait."""
    needs(aio)
    path = make_file(tmp_path, 64 * 1024)
    model = bytearray(contents(path))

    def scenario() -> Tuple[List[BaseException], List[BlockRequest], bool]:
        img = block.open_image(path, aio=aio, cache=cache, queue_depth=16)
        raised: List[BaseException] = []

        def bad(r: BlockRequest) -> None:
            raise Boom(f"callback of {r.offset}")

        with img.plugged():
            reqs = []
            for i in range(8):
                buf = aligned_buffer(4096)
                buf[:] = bytes([i + 1]) * 4096
                reqs.append(img.submit_write(buf, i * 4096, bad))
        time.sleep(0.2)
        ring = getattr(img.engine, "ring", None)
        deadline = time.monotonic() + 5
        while ring is not None and ring.cq_ready < 8 and time.monotonic() < deadline:
            time.sleep(0.01)  # a busy disk: all eight in the CQ before the one reap
        while not all(r.finished for r in reqs):
            try:
                img.wait()
            except Boom as exc:
                raised.append(exc)
        img.wait()
        img.close()
        return raised, reqs, img.engine.closed

    with caplog.at_level(logging.ERROR, logger="uring.block"):
        raised, reqs, closed = runner.call(scenario)
    for i in range(8):
        model[i * 4096:(i + 1) * 4096] = bytes([i + 1]) * 4096
    assert contents(path) == bytes(model)
    assert all(r.value() == 4096 for r in reqs)
    logged = [rec for rec in caplog.records if "callback raised" in rec.getMessage()]
    assert len(raised) == 1  # all eight were reaped in one batch: one raise ...
    assert len(logged) == 7  # ... and seven logged
    assert closed


@combos()
def test_close_always_closes_after_a_failing_callback(tmp_path: Any, runner: Runner, aio: str,
                                                      cache: str) -> None:
    needs(aio)
    path = make_file(tmp_path, 64 * 1024)

    def scenario() -> Tuple[Optional[BaseException], int, bool, List[bool]]:
        img = block.open_image(path, aio=aio, cache=cache)

        def bad(r: BlockRequest) -> None:
            raise Boom("in close")

        reqs = [img.submit_write(b"z" * 4096, i * 4096, bad) for i in range(4)]
        err: Optional[BaseException] = None
        try:
            img.close()
        except Boom as exc:
            err = exc
        img.close()  # idempotent
        return err, img.fd, img.engine.closed, [r.finished for r in reqs]

    err, fd, closed, finished = runner.call(scenario)
    assert isinstance(err, Boom)
    assert fd == -1 and closed and all(finished)
    assert contents(path)[:4 * 4096] == b"z" * 4 * 4096


# --- 2. requests an engine cannot run --------------------------------------------------


def _strided() -> memoryview:
    return memoryview(bytearray(20))[::2]


BAD_REQUESTS: Dict[str, Callable[[block.Image], Any]] = {
    "strided-write": lambda img: img.submit_write(_strided(), 0),
    "strided-read": lambda img: img.submit_read(_strided(), 0),
    "strided-writev": lambda img: img.submit_writev([b"ok", _strided()], 0),
    "float-offset-write": lambda img: img.submit_write(b"x" * 10, 1.5),
    "float-offset-read": lambda img: img.submit_read(bytearray(10), 2.0),
    "str-offset": lambda img: img.submit_write(b"x", "0"),
    "bool-offset": lambda img: img.submit_write(b"x", True),
    "negative-offset": lambda img: img.submit_write(b"x", -1),
    "offset-past-2**63": lambda img: img.submit_read(bytearray(4), (1 << 63) - 2),
    "read-into-bytes": lambda img: img.submit_read(b"read-only", 0),
    "not-a-buffer": lambda img: img.submit_write(object(), 0),
    "one-buffer-for-writev": lambda img: img.submit_writev(b"abc", 0),
    "int-in-writev": lambda img: img.submit_writev([b"a", 3], 0),
    "callback-not-callable": lambda img: img.submit_write(b"x", 0, 42),  # type: ignore[arg-type]
    "float-length-discard": lambda img: img.submit_discard(0, 1.5),
    "negative-write-zeroes": lambda img: img.submit_write_zeroes(-5, 10),
}


@combos()
def test_bad_requests_are_refused_at_submit_and_change_nothing(tmp_path: Any, runner: Runner,
                                                               aio: str, cache: str) -> None:
    needs(aio)
    path = make_file(tmp_path, 64 * 1024)
    before = contents(path)

    def scenario() -> Dict[str, Any]:
        img = block.open_image(path, aio=aio, cache=cache)
        refused: Dict[str, str] = {}
        for name, make in BAD_REQUESTS.items():
            try:
                make(img)
            except (TypeError, ValueError) as exc:
                refused[name] = type(exc).__name__
            else:
                refused[name] = "accepted"
            assert not img.engine.in_flight and not img.engine.pending, name
        img.wait()  # nothing outstanding: returns at once
        unchanged = contents(path) == before
        # the image still works, and closes cleanly
        img.pwrite(b"after", 100)
        back = img.pread(5, 100)
        img.close()
        return dict(refused=refused, unchanged=unchanged, back=back, closed=img.engine.closed)

    out = runner.call(scenario)
    assert all(v in ("TypeError", "ValueError") for v in out["refused"].values()), out["refused"]
    assert out["unchanged"] and out["back"] == b"after" and out["closed"]
    assert contents(path) == before[:100] + b"after" + before[105:]


def _engine_bad_requests(direct: bool) -> List[Tuple[str, BlockRequest]]:
    size = 4096 if direct else 10
    return [
        ("strided", BlockRequest(Op.WRITE, 0, 10, [_strided()])),
        ("float offset", BlockRequest(Op.WRITE, 4096.0, size,  # type: ignore[arg-type]
                                      [memoryview(aligned_buffer(size))])),
        ("str offset", BlockRequest(Op.READ, "8192", size,  # type: ignore[arg-type]
                                    [memoryview(aligned_buffer(size))])),
    ]


@combos()
def test_engine_failure_fails_that_request_alone(tmp_path: Any, runner: Runner, aio: str,
                                                 cache: str) -> None:
    """Below Image's checks (a request handed to the engine itself): the
    engine fails that one request with EINVAL, naming the op, and the
    requests around it, the worker threads and the queue go on."""
    needs(aio)
    path = make_file(tmp_path, 64 * 1024)
    before = contents(path)

    def scenario() -> Dict[str, Any]:
        img = block.open_image(path, aio=aio, cache=cache)
        engine = img.engine
        good: List[BlockRequest] = []
        bad = _engine_bad_requests(img.direct)
        for i, (_, req) in enumerate(bad):
            ok = BlockRequest(Op.WRITE, 16384 + i * 4096, 4096, [memoryview(aligned_buffer(4096))])
            memoryview(ok.views[0])[:] = bytes([65 + i]) * 4096
            engine.enqueue(ok)
            good.append(ok)
            engine.enqueue(req)
        engine.drain()
        errors = [(name, req.error) for name, req in bad]
        results = [r.value() for r in good]
        img.pwrite(b"still", 40000)  # the image goes on
        img.close()
        return dict(errors=errors, results=results, closed=engine.closed,
                    threads_alive=[t.is_alive() for t in getattr(engine, "_threads", [])])

    out = runner.call(scenario)
    for name, err in out["errors"]:
        assert isinstance(err, OSError) and err.errno == errno.EINVAL, (name, err)
        assert "write of" in str(err) or "read of" in str(err), err
    assert out["results"] == [4096] * 3 and out["closed"]
    assert not any(out["threads_alive"])  # closed: every worker ended normally
    now = contents(path)
    assert now[16384:16384 + 3 * 4096] == b"A" * 4096 + b"B" * 4096 + b"C" * 4096
    assert now[40000:40005] == b"still" and now[:16384] == before[:16384]


# --- 3. a write that extends the file ---------------------------------------------------


EXTEND_CASES = {
    # name: (initial size, [(offset, length), ...]), each one a write that
    # ends past end of file off an O_DIRECT block boundary
    "empty-10-at-5": (0, [(5, 10)]),
    "empty-gap-then-10": (0, [(5000, 10)]),
    "unaligned-eof-across": (15, [(10, 20)]),
    "many-in-flight": (100, [(i * 700 + 3, 333) for i in range(12)]),
    "vectored": (0, [(77, 600)]),
}
# the same, plus writes that must not change the size as they do not
# extend the file or are aligned (guards, in every cache mode)
SIZE_CASES = dict(EXTEND_CASES, **{
    "inside-no-growth": (9000, [(5, 10)]),
    "aligned-after-unaligned-eof": (15, [(512, 512)]),
})
DIRECT_COMBOS = [c for c in COMBOS if c[1] in DIRECT]


def _write_and_compare(tmp_path: Any, runner: Runner, aio: str, cache: str, case: str) -> None:
    needs(aio)
    size, writes = SIZE_CASES[case]
    path = make_file(tmp_path, size)
    ref = make_file(tmp_path, 0, "reference.img")
    with open(ref, "wb") as f:
        f.write(contents(path))
    datas = [os.urandom(n) for _, n in writes]

    def scenario() -> None:
        img = block.open_image(path, aio=aio, cache=cache, queue_depth=4)
        for (off, _), data in zip(writes, datas):
            if case == "vectored":
                img.submit_writev([data[:100], data[100:]], off)
            else:
                img.submit_write(data, off)
        img.wait()
        img.close()

    runner.call(scenario)
    fd = os.open(ref, os.O_WRONLY)
    for (off, _), data in zip(writes, datas):
        os.pwrite(fd, data, off)
    os.close(fd)
    assert os.stat(path).st_size == os.stat(ref).st_size
    assert contents(path) == contents(ref)


@pytest.mark.parametrize(("aio", "cache"), DIRECT_COMBOS,
                         ids=[f"{a}-{c}" for a, c in DIRECT_COMBOS])
@pytest.mark.parametrize("case", list(EXTEND_CASES), ids=list(EXTEND_CASES))
def test_o_direct_extending_write_leaves_the_plain_pwrite_size(
        tmp_path: Any, runner: Runner, aio: str, cache: str, case: str) -> None:
    _write_and_compare(tmp_path, runner, aio, cache, case)


@combos()
def test_write_sizes_match_plain_pwrite_in_every_cache_mode(tmp_path: Any, runner: Runner,
                                                             aio: str, cache: str) -> None:
    """A guard rather than a defect: every shape above, in one image of
    each engine x cache mode, buffered ones included."""
    for case in SIZE_CASES:
        sub = os.path.join(tmp_path, case)
        os.mkdir(sub)
        _write_and_compare(sub, runner, aio, cache, case)


# --- the state machine ------------------------------------------------------------------


def _available_combos() -> List[Tuple[str, str]]:
    from conftest import _UNAVAILABLE  # type: ignore[attr-defined]

    return [c for c in COMBOS if c[0] != "io_uring" or not _UNAVAILABLE]


INVALID = list(BAD_REQUESTS)
SPAN = 12 * 1024  # offsets stay below this: a small file, many overlaps


class BlockMachine(RuleBasedStateMachine):
    """One image (engine x cache, fault plan drawn at the start) against a
    bytearray.  Each step submits a batch of requests whose written ranges
    do not overlap anything else in the batch (so the outcome is defined),
    some with callbacks that raise, then waits (or polls) until every
    request is finished, tolerating exactly the callbacks' exceptions."""

    def __init__(self) -> None:
        super().__init__()
        self.runner = Runner()
        self.img: Optional[block.Image] = None
        self.path = ""
        self.model = bytearray()

    @initialize(combo=st.sampled_from(_available_combos()),
                size=st.integers(0, 9000),
                short_every=st.sampled_from([0, 2, 3]),
                error_every=st.sampled_from([0, 3, 5]),
                error=st.sampled_from([errno.EAGAIN, errno.EINTR, errno.EIO]))
    def start(self, combo: Tuple[str, str], size: int, short_every: int, error_every: int,
             error: int) -> None:
        aio, cache = combo
        directory = _machine_dir()
        self.path = os.path.join(directory, f"m{id(self)}.img")
        initial = os.urandom(size)
        with open(self.path, "wb") as f:
            f.write(initial)
        self.model = bytearray(initial)
        self.faults = IoFaults(short_every=short_every, granule=4096,
                               error_every=error_every, error=error)
        self.img = self.runner.call(lambda: block.open_image(
            self.path, aio=aio, cache=cache, queue_depth=4, faults=self.faults))

    # -- steps ---------------------------------------------------------------

    @rule(batch=st.lists(st.tuples(
        st.sampled_from(["read", "write", "writev", "zeroes", "discard", "flush"]),
        st.integers(0, SPAN), st.integers(0, 5000), st.booleans()), min_size=1, max_size=5),
        use_poll=st.booleans())
    def submit_batch(self, batch: List[Tuple[str, int, int, bool]], use_poll: bool) -> None:
        img = self.img
        assert img is not None
        taken: List[Tuple[int, int, bool]] = []  # (start, end, writes)
        plan = []
        for kind, off, n, fail in batch:
            writes = kind in ("write", "writev", "zeroes", "discard")
            if kind == "flush":
                off, n = 0, 0
            lo, hi = off, off + n
            if any(lo < e and s < hi and (w or writes) for s, e, w in taken):
                continue  # an overlap with a write: order undefined, leave it out
            taken.append((lo, hi, writes))
            plan.append((kind, off, n, fail, os.urandom(n) if kind.startswith("write") else b""))

        def run() -> Tuple[List[BlockRequest], List[BaseException], List[int]]:
            reqs: List[BlockRequest] = []
            ran: List[int] = []
            caught: List[BaseException] = []
            for i, (kind, off, n, fail, data) in enumerate(plan):
                def cb(r: BlockRequest, i: int = i, fail: bool = fail) -> None:
                    ran.append(i)
                    if fail:
                        raise Boom(i)
                if kind == "read":
                    reqs.append(img.submit_read(bytearray(n), off, cb))
                elif kind == "write":
                    reqs.append(img.submit_write(data, off, cb))
                elif kind == "writev":
                    reqs.append(img.submit_writev([data[: n // 3], data[n // 3:]], off, cb))
                elif kind == "zeroes":
                    reqs.append(img.submit_write_zeroes(off, n, cb))
                elif kind == "discard":
                    reqs.append(img.submit_discard(off, n, cb))
                else:
                    reqs.append(img.submit_flush(cb))
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                try:
                    img.poll() if use_poll else img.wait()
                except Boom as exc:
                    caught.append(exc)
                    continue
                if all(r.finished for r in reqs) and not img.engine.in_flight:
                    break
            return reqs, caught, ran

        reqs, caught, ran = self.runner.call(run, timeout=5.0)
        assert all(r.finished for r in reqs)
        assert sorted(ran) == list(range(len(plan)))  # every callback ran, once
        failing = sum(1 for p in plan if p[3])
        assert len(caught) <= failing and (failing == 0) == (not caught)
        model = self.model
        failed: List[Tuple[int, int, bytes, bool]] = []
        for (kind, off, n, _, data), req in zip(plan, reqs):  # writes first (disjoint)
            if req.error is not None:
                assert req.error.errno == self.faults.error, req.error  # only injected ones
                assert f"{req.op.value} of {n} bytes at offset {off}" in str(req.error)
                if kind != "read" and kind != "flush" and n:
                    failed.append((off, n, data or bytes(n), kind == "discard"))
            elif kind in ("write", "writev", "zeroes") and n:
                if off > len(model):
                    model.extend(bytes(off - len(model)))
                model[off: off + n] = data if kind != "zeroes" else bytes(n)
            elif kind == "discard":
                end = min(off + n, len(model))
                if off < end:
                    model[off:end] = bytes(end - off)
        if failed:
            self._adopt_after_failed_writes(failed)
        for (kind, off, n, _, _), req in zip(plan, reqs):
            if kind == "read" and req.error is None:
                assert bytes(req.views[0]) == bytes(self.model[off: off + n]).ljust(n, b"\0")

    def _adopt_after_failed_writes(self, failed: List[Tuple[int, int, bytes, bool]]) -> None:
        """Failed writes may have landed in part: every byte of their
        ranges is old or new, nothing outside them changed, and the size is
        at most what the whole writes would have made it."""
        now = contents(self.path)
        base = bytes(self.model)
        grown = max([len(base)] + [off + n for off, n, _, keep in failed if not keep])
        assert len(base) <= len(now) <= grown
        for i in range(len(now)):
            was = base[i] if i < len(base) else 0
            if now[i] != was:
                assert any(off <= i < off + n and now[i] == new[i - off]
                           for off, n, new, _ in failed), i
        self.model = bytearray(now)

    @rule(which=st.sampled_from(INVALID))
    def invalid_request(self, which: str) -> None:
        img = self.img
        assert img is not None

        def run() -> str:
            try:
                BAD_REQUESTS[which](img)
            except (TypeError, ValueError) as exc:
                assert not img.engine.in_flight and not img.engine.pending
                return type(exc).__name__
            return "accepted"

        assert self.runner.call(run, timeout=5.0) in ("TypeError", "ValueError")

    @invariant()
    def file_matches_model(self) -> None:
        if self.img is None:
            return
        now = contents(self.path)
        assert len(now) == len(self.model)
        assert now == bytes(self.model)

    def teardown(self) -> None:
        try:
            if self.img is not None and not self.runner.hung:
                img = self.img
                self.runner.call(img.close, timeout=5.0)
                assert img.fd == -1 and img.engine.closed
        finally:
            self.runner.stop()
            if self.path and os.path.exists(self.path):
                os.unlink(self.path)


_MACHINE_DIR: List[str] = []


def _machine_dir() -> str:
    return _MACHINE_DIR[-1]


@pytest.fixture
def machine_dir(tmp_path: Any) -> Iterator[str]:
    make_file(tmp_path, 0, "probe.img")  # skips where O_DIRECT is refused
    _MACHINE_DIR.append(str(tmp_path))
    yield str(tmp_path)
    _MACHINE_DIR.pop()


def test_state_machine(machine_dir: str) -> None:
    if not _available_combos():  # pragma: no cover
        pytest.skip("no engine")
    BlockMachine.TestCase.settings = settings(
        max_examples=20, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    BlockMachine.TestCase().runTest()
