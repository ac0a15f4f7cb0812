"""``threadsafe=True`` rings, second round: timed waits that do not share a
deadline, and calls that never reach the kernel through a closed fd.

A timed wait hands the kernel an ``io_uring_getevents_arg`` whose
timespec the kernel reads when it is entered.  The ring kept one such
pair for every wait: two threads waiting at once with different
timeouts could store over each other's timespec between the store and
the enter, and one slept to the other's deadline.  Each wait on a shared
ring now has a pair of its own.

``submit()`` (and ``sq_wait``, ``reap_words``, ``submit_and_wait``) read
the ring's fd and entered the kernel with no lock a concurrent
``close()`` takes: a call racing the close entered a closed fd
(``EBADF``), or the same number given meanwhile to a new ring or file,
and a ``submit`` could publish into unmapped rings (``ValueError`` on a
released memoryview).  Now the calls that return at once hold the SQ or
CQ lock through the enter, and a waiter, which holds none, keeps the fd
open: ``close()`` leaves it to the last waiter to close.  Every such call
succeeds on the ring it was given or raises ``RingClosedError``.

The seam (``uring.faults.FaultInjector``) stands between the ring and the
real kernel in some of these tests, for two things the kernel does not
do on demand: it checks that each call it forwards still names the
ring's own file (by inode: every io_uring instance has its own), and it
holds one thread at the point just before its system call, the thread
descheduled between reading the fd and entering, for as long as the
test needs.  Every call it lets through reaches the real kernel.
"""

from __future__ import annotations

import fcntl
import os
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import require_uring

import uring
from uring import abi
from uring.faults import FaultInjector

_EXT_ARG = int(abi.IORING_ENTER_EXT_ARG)


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Hand the GIL from thread to thread as often as the interpreter can,
    so that the interleavings a race needs come up many times a round."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        return True
    except OSError:
        return False


class _Watched(FaultInjector):
    """The real kernel, behind a seam that records every ``io_uring_enter``
    or ``io_uring_register`` reaching it with an fd that is not the ring's
    own file (*strays*), that can hold the first such call of one named
    thread just before the real call (``hold``: it sets *held*, waits for
    *go*), and that can dawdle before each timed enter (*dawdle* seconds,
    the GIL released: other threads run between the caller's store of its
    timespec and the kernel's read of it)."""

    def __init__(self, dawdle: float = 0.0) -> None:
        super().__init__()
        self.dawdle = dawdle
        self.inode: Optional[int] = None
        self.strays: List[Tuple[str, int, Optional[int]]] = []
        self.hold_thread: Optional[str] = None
        self.held = threading.Event()
        self.go = threading.Event()

    def watch(self, ring: uring.Ring) -> None:
        self.inode = os.fstat(ring.fd).st_ino

    def _reaching(self, call: str, fd: int) -> None:
        if self.hold_thread is not None and threading.current_thread().name == self.hold_thread:
            self.hold_thread = None
            self.held.set()
            self.go.wait(10)
        if self.inode is None:
            return
        try:
            inode: Optional[int] = os.fstat(fd).st_ino
        except OSError:
            inode = None
        if inode != self.inode:
            self.strays.append((call, fd, inode))

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int,
              arg: int = 0, argsz: int = 0) -> int:
        if self.dawdle and flags & _EXT_ARG:
            time.sleep(self.dawdle)
        self._reaching("enter", fd)
        return super().enter(fd, to_submit, min_complete, flags, arg, argsz)

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        self._reaching("register", fd)
        return super().register(fd, opcode, arg, nr_args)


# -- timed waits: each its own deadline ----------------------------------------------------

SHORT, LONG = 0.02, 0.4


def _timed_waits_round(ring: uring.Ring, shorts: int = 4, longs: int = 4
                       ) -> Dict[Tuple[str, int], float]:
    """*shorts* threads ``wait(1, SHORT)`` and *longs* threads
    ``wait(1, LONG)``, all at once, on a ring where nothing completes:
    (kind, i) -> seconds the wait took."""
    took: Dict[Tuple[str, int], float] = {}
    errors: List[BaseException] = []
    start = threading.Barrier(shorts + longs)

    def waiter(kind: str, i: int, timeout: float) -> None:
        start.wait()
        began = time.monotonic()
        try:
            got = ring.wait(1, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test
            errors.append(exc)
            return
        took[(kind, i)] = time.monotonic() - began
        assert got == []

    threads = [threading.Thread(target=waiter, args=("short", i, SHORT), daemon=True)
               for i in range(shorts)]
    threads += [threading.Thread(target=waiter, args=("long", i, LONG), daemon=True)
                for i in range(longs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(LONG * 10)
    assert not [t for t in threads if t.is_alive()], "a timed wait did not return"
    assert errors == []
    return took


def _assert_own_deadlines(took: Dict[Tuple[str, int], float]) -> None:
    shorts = {k: v for k, v in took.items() if k[0] == "short"}
    longs = {k: v for k, v in took.items() if k[0] == "long"}
    # A short wait that slept on a long one's timespec takes LONG: half of
    # it is far beyond SHORT plus any scheduling delay.
    assert max(shorts.values()) < LONG / 2, took
    # The kernel's timer never fires early, and the wait goes on to its own
    # deadline when woken before it.
    assert min(longs.values()) >= LONG - 0.01, took


def test_concurrent_timed_waits_keep_their_own_deadlines() -> None:
    """On the real kernel, straight through libc's ``syscall``: three
    short and three long timed waits at once on a shared ring with
    nothing to complete; each returns at its own deadline (the wait's
    own ``io_uring_getevents_arg`` is what the kernel reads)."""
    require_uring()
    with uring.Ring(8, threadsafe=True) as ring:
        for _ in range(8):
            _assert_own_deadlines(_timed_waits_round(ring))


def test_timed_waits_racing_between_timespec_and_enter_keep_their_deadlines() -> None:
    """The same, with every timed enter dawdling a few milliseconds
    between the wait's store of its timespec and the real call: the
    other waiters store theirs meanwhile.  With one timespec per ring,
    the short waits slept to a long one's deadline (or the long ones
    were cut short and re-entered with theirs over the short ones'),
    round after round; each wait's own pair keeps each deadline."""
    require_uring()
    kernel = _Watched(dawdle=0.005)
    with uring.Ring(8, threadsafe=True, kernel=kernel) as ring:
        kernel.watch(ring)
        for _ in range(4):
            _assert_own_deadlines(_timed_waits_round(ring))
        assert kernel.strays == []


def test_a_default_ring_still_reuses_its_one_timespec() -> None:
    """The single-threaded ring keeps its reused pair (no allocation per
    wait): a timed wait passes the ring's own ``io_uring_getevents_arg``
    address, whose timespec holds the time that was left."""
    require_uring()
    seen: List[int] = []

    class Seen(FaultInjector):
        def enter(self, fd: int, to_submit: int, min_complete: int, flags: int,
                  arg: int = 0, argsz: int = 0) -> int:
            seen.append(arg)
            return super().enter(fd, to_submit, min_complete, flags, arg, argsz)

    with uring.Ring(8, kernel=Seen()) as ring:
        assert ring.wait(1, timeout=0.01) == []
        assert ring.wait(1, timeout=0.2) == []
        own = ring._ext_arg_ptr.value
        assert seen and set(seen) == {own}
        assert 0.0 < ring._ts.tv_nsec / 1e9 < 0.2 and ring._ts.tv_sec == 0


# -- close() against calls that enter the kernel -------------------------------------------


def _hammer_round(round_: int, pause: float, seam: bool) -> Tuple[List[str], List[Any]]:
    """One round: four threads prepare NOPs and ``submit``/
    ``submit_and_wait``/``reap`` in a loop until ``RingClosedError``, a
    fifth opens and closes pipes (so that a number the ring's fd had is
    soon another file's), and this thread closes the ring after *pause*.
    Returns (each submitter's end other than ``RingClosedError``, the
    seam's strays)."""
    kernel = _Watched() if seam else None
    ring = uring.Ring(16, threadsafe=True, kernel=kernel)
    if kernel is not None:
        kernel.watch(ring)
    ends: List[str] = []
    start = threading.Barrier(6)
    churning = threading.Event()

    def hammer(me: int) -> None:
        start.wait()
        n = 0
        while True:
            n += 1
            try:
                ring.prep_nop()
                if (n + me) % 5 == 0:
                    ring.submit_and_wait(1)
                else:
                    ring.submit()
                ring.reap()
            except uring.RingClosedError:
                return
            except uring.SubmissionQueueFull:
                continue
            except BaseException as exc:  # noqa: BLE001 - the outcome is the test
                ends.append(f"round {round_}: {exc!r}")
                return

    def churn() -> None:
        start.wait()
        while not churning.is_set():
            r, w = os.pipe()
            os.close(r)
            os.close(w)

    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(4)]
    churner = threading.Thread(target=churn, daemon=True)
    for t in threads + [churner]:
        t.start()
    start.wait()
    time.sleep(pause)
    ring.close()
    for t in threads:
        t.join(5)
    churning.set()
    churner.join(5)
    assert not [t for t in threads if t.is_alive()], f"round {round_}: a submitter hangs"
    return ends, [] if kernel is None else kernel.strays


@pytest.mark.parametrize("seam", [False, True], ids=["direct", "seam"])
def test_submitters_racing_close_get_results_or_ring_closed_error(
        seam: bool, busy_switching: None) -> None:
    """Threads submitting NOPs while the ring is closed under them, fds
    churning, many rounds (``_hammer_round``): each thread's calls
    succeed until one raises ``RingClosedError``; never an ``OSError``
    from a closed or reused fd (``EBADF``, ``EOPNOTSUPP``, ``ENXIO``),
    never a ``ValueError`` from released ring memory; with the seam, no
    call reaches the kernel naming anything but the ring."""
    require_uring()
    rng = random.Random(1234)
    failures: List[str] = []
    strays: List[Any] = []
    for round_ in range(60 if seam else 100):
        ends, stray = _hammer_round(round_, rng.uniform(0, 0.004), seam)
        failures += ends
        strays += stray
    assert failures == []
    assert strays == []


def _ring_kwargs(path: str) -> Dict[str, Any]:
    if path in ("reap_words", "reap"):
        return {"flags": abi.IORING_SETUP_IOPOLL}  # these enter the kernel on every call
    if path == "sq_wait":
        return {"flags": abi.IORING_SETUP_SQPOLL, "sq_thread_idle": 1000}
    return {}


_LATE_CALLS: Dict[str, Callable[[uring.Ring], Any]] = {
    "submit": lambda ring: (ring.prep_nop(), ring.submit())[1],
    "submit_and_wait": lambda ring: (ring.prep_nop(), ring.submit_and_wait(1))[1],
    "wait": lambda ring: (ring.prep_nop(), ring.wait(1, timeout=2))[1],
    "reap_words": lambda ring: ring.reap_words(),
    "reap": lambda ring: ring.reap(),
    "sq_wait": lambda ring: ring.sq_wait(),
    "register": lambda ring: ring.register_files_sparse(4),
}

#: close()'s own timeout in these tests (it gives up on a waiter after it).
CLOSE_TIMEOUT = 0.3


@pytest.mark.parametrize("path", list(_LATE_CALLS))
def test_a_call_overtaken_by_close_never_enters_the_fd_a_new_ring_took(path: str) -> None:
    """A thread makes *path*'s call and is held by the seam just before
    its system call (it has read the fd); another thread closes the ring;
    if the fd is closed then, a new ring takes its number (``dup2``), with
    a NOP in its SQ it has not submitted; then the held thread goes on.

    Before, ``submit``, ``submit_and_wait``, ``wait``, ``reap_words`` and
    ``sq_wait`` entered the new ring (a submit took its NOP).  Now the
    close waits for the calls that hold a lock, and leaves the fd open to
    a waiter that holds none: the held call goes to its own ring, which
    it finds closed or not, and gets its result or ``RingClosedError``.
    Once the call is out the fd is closed; the same call made then, with
    the new ring at the old number, is refused before the kernel.  The
    new ring's SQ head and CQ never move."""
    require_uring()
    kernel = _Watched()
    try:
        ring = uring.Ring(8, threadsafe=True, kernel=kernel, **_ring_kwargs(path))
    except OSError as exc:  # pragma: no cover - a kernel without the set-up
        pytest.skip(f"{path}: {exc}")
    kernel.watch(ring)
    fd = ring.fd
    call = _LATE_CALLS[path]
    outcome: List[Any] = []

    def late() -> None:
        try:
            outcome.append(("returned", call(ring)))
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test
            outcome.append(("raised", exc))

    kernel.hold_thread = "late"
    caller = threading.Thread(target=late, name="late", daemon=True)
    caller.start()
    assert kernel.held.wait(5), f"{path} never reached the kernel"
    closer = threading.Thread(target=lambda: ring.close(timeout=CLOSE_TIMEOUT), daemon=True)
    closer.start()
    closer.join(CLOSE_TIMEOUT + 0.7)  # done, unless it waits for the held call's lock

    new = uring.Ring(8)
    dup = -1

    def take_the_number() -> None:
        nonlocal dup
        if new.fd != fd and dup < 0 and not _is_open(fd):
            dup = os.dup2(new.fd, fd)

    try:
        take_the_number()
        new.prep_nop(99)
        new.submit(0)  # published, not entered: only a stray enter would consume it
        kernel.go.set()
        caller.join(10)
        closer.join(10)
        assert not caller.is_alive(), f"{path}: the held call hangs"
        assert not closer.is_alive(), "close() hangs"
        assert ring.closed
        assert kernel.strays == [], f"{path} reached the kernel through a stale fd"
        assert len(outcome) == 1
        kind, value = outcome[0]
        assert kind == "returned" or type(value) is uring.RingClosedError, (path, value)
        assert not _is_open(fd) or new.fd == fd or dup == fd, "the closed ring's fd was left open"

        take_the_number()  # the number is free now, whatever happened above
        assert new.fd == fd or dup == fd
        with pytest.raises(uring.RingClosedError):
            call(ring)
        assert kernel.strays == []
        assert (new.sq_head, new.cq_ready) == (0, 0), f"{path} entered the new ring"
    finally:
        kernel.go.set()
        if dup >= 0:
            os.close(dup)
        new.close()


def test_a_waiter_close_gave_up_on_keeps_the_fd_until_it_leaves() -> None:
    """``close(timeout=...)`` gives up on a waiter it cannot bring out (held
    here by the seam before its enter): the ring is closed, its ``fd``
    reads -1, but the number stays the ring's (no other file can take it)
    until the waiter is out; then it is closed.  The waiter, which reaps
    only the close's own CQEs (its wake-up, its ``ASYNC_CANCEL``), gets
    ``RingClosedError``, not those."""
    require_uring()
    kernel = _Watched()
    ring = uring.Ring(8, threadsafe=True, kernel=kernel)
    kernel.watch(ring)
    fd = ring.fd
    outcome: List[Any] = []

    def late() -> None:
        try:
            outcome.append(ring.wait(1, timeout=2))
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test
            outcome.append(exc)

    kernel.hold_thread = "late"
    caller = threading.Thread(target=late, name="late", daemon=True)
    caller.start()
    try:
        assert kernel.held.wait(5)
        began = time.monotonic()
        ring.close(timeout=CLOSE_TIMEOUT)
        assert time.monotonic() - began < CLOSE_TIMEOUT + 1.0
        assert ring.closed and ring.fd == -1
        assert _is_open(fd) and os.fstat(fd).st_ino == kernel.inode
    finally:
        kernel.go.set()
    caller.join(5)
    assert not caller.is_alive()
    assert len(outcome) == 1 and type(outcome[0]) is uring.RingClosedError, outcome
    assert not _is_open(fd) or os.fstat(fd).st_ino != kernel.inode
    assert kernel.strays == []
