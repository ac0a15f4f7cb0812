"""UringEventLoop and UringSelector (uring/asyncio/loop.py).

Part 1 runs CPython's own event loop tests (``test.test_asyncio``) against
``UringEventLoop`` the way CPython runs them for its epoll loop; part 2
tests ``UringSelector`` directly on real fds, side by side with
``selectors.EpollSelector``; part 3 the entry points (``run``, the policy).
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import selectors
import socket
import sys
import time
import unittest
from typing import Any, Callable, Iterator, List, Set, Tuple

import pytest
from conftest import _UNAVAILABLE, REQUIRE_KERNEL

# CPython's asyncio test suite.  Not importable is a failure, not a skip:
# CI has it (python3-test / a full CPython build).
from test.test_asyncio import (
    test_base_events,  # noqa: E402
    test_events,  # noqa: E402
    test_sendfile,  # noqa: E402
    test_server,  # noqa: E402
    test_sock_lowlevel,  # noqa: E402
)

import uring
import uring.asyncio
from uring.asyncio.loop import UringEventLoop, UringSelector

try:
    from test.test_asyncio import test_ssl  # noqa: E402
except ImportError:  # added to CPython's suite in 3.11
    if sys.version_info >= (3, 11):
        raise
    test_ssl = None  # type: ignore[assignment]
from test.test_asyncio import (
    test_sslproto,  # noqa: E402
    test_streams,  # noqa: E402
    test_subprocess,  # noqa: E402
    test_unix_events,  # noqa: E402
)
from test.test_asyncio import utils as test_utils  # noqa: E402

if _UNAVAILABLE:  # the unittest classes below cannot call require_uring() per test
    if REQUIRE_KERNEL:
        raise RuntimeError(f"URING_REQUIRE_KERNEL is set but {_UNAVAILABLE}")
    pytest.skip(_UNAVAILABLE, allow_module_level=True)


def teardown_module() -> None:
    # as CPython's test_events.tearDownModule
    asyncio.set_event_loop_policy(None)


def _skip(reason: str) -> Callable[..., Any]:
    @unittest.skip(reason)
    def skipped(self: Any) -> None:  # pragma: no cover - never runs
        pass
    return skipped


# ---------------------------------------------------------------------------
# 1. CPython's tests, on UringEventLoop


class UringEventLoopTests(test_events.UnixEventLoopTestsMixin,
                          test_events.SubprocessTestsMixin,
                          test_utils.TestCase):
    """``test_events.EPollEventLoopTests`` with the loop swapped (its
    ``UnixEventLoopTestsMixin`` attaches a ``SafeChildWatcher`` to the loop
    for the subprocess tests, as on 3.11)."""

    def create_event_loop(self) -> UringEventLoop:
        return UringEventLoop()


class UringSockLowlevelTests(test_sock_lowlevel.BaseSockTestsMixin, test_utils.TestCase):
    """``test_sock_lowlevel.EPollEventLoopTests``: loop.sock_* on raw sockets."""

    def create_event_loop(self) -> UringEventLoop:
        return UringEventLoop()


class UringSendfileTests(test_sendfile.SendfileTestsBase, test_utils.TestCase):
    """``test_sendfile.EPollEventLoopTests``: loop.sendfile / sock_sendfile."""

    def create_event_loop(self) -> UringEventLoop:
        return UringEventLoop()


class UringSubprocessTests(test_subprocess.SubprocessWatcherMixin, test_utils.TestCase):
    """``test_subprocess.SubprocessSafeWatcherTests`` with loops made by
    ``uring.asyncio.EventLoopPolicy``."""

    Watcher = asyncio.SafeChildWatcher

    def setUp(self) -> None:
        asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())
        super().setUp()
        assert isinstance(self.loop, UringEventLoop)

    def tearDown(self) -> None:
        super().tearDown()  # detaches the watcher from our policy
        asyncio.set_event_loop_policy(None)


class _UringPolicy:
    """For CPython test classes that make their loop with
    ``asyncio.new_event_loop()``: our policy for the test's duration."""

    def setUp(self) -> None:
        asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())
        super().setUp()  # type: ignore[misc]
        assert isinstance(self.loop, UringEventLoop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            asyncio.set_event_loop_policy(None)


class _OwnLoop:
    """For CPython test classes whose ``setUp`` hard-codes
    ``asyncio.SelectorEventLoop()``: the same set-up with ours."""

    def setUp(self) -> None:
        test_utils.TestCase.setUp(self)  # type: ignore[arg-type]
        self.loop = UringEventLoop()
        self.set_event_loop(self.loop)  # type: ignore[attr-defined]


class UringStreamTests(_UringPolicy, test_streams.StreamTests):
    pass


class UringStartServerTests(test_server.BaseStartServer, unittest.TestCase):
    def new_loop(self) -> UringEventLoop:
        return UringEventLoop()


class UringStartTLSTests(test_sslproto.BaseStartTLS, unittest.TestCase):
    def new_loop(self) -> UringEventLoop:
        return UringEventLoop()


class UringSslProtoHandshakeTests(_UringPolicy, test_sslproto.SslProtoHandshakeTests):
    pass


if test_ssl is not None:
    class UringSSLTests(_UringPolicy, test_ssl.TestSSL):
        def new_loop(self) -> UringEventLoop:
            return UringEventLoop()


class UringUnixSocketTests(_OwnLoop, test_unix_events.SelectorEventLoopUnixSocketTests):
    pass


class UringUnixSockSendfileTests(_UringPolicy, test_unix_events.SelectorEventLoopUnixSockSendfileTests):
    pass


class UringUnixFunctionalTests(_UringPolicy, test_unix_events.TestFunctional):
    pass


class UringSignalTests(_OwnLoop, test_unix_events.SelectorEventLoopSignalTests):
    pass


class UringBaseEventLoopWithSelectorTests(_OwnLoop, test_base_events.BaseEventLoopWithSelectorTests):
    pass


# Tests that cost a second or more by design (they sleep, or wait out a
# timeout, on every loop alike); their code paths run in the quick ones.
_SLOW = "slow by design (sleeps/waits ~1 s on any loop); its paths are covered by faster tests here"
if test_ssl is not None:
    UringSSLTests.test_shutdown_cleanly = _skip(_SLOW)  # type: ignore[method-assign]
    UringSSLTests.test_create_connection_ssl_slow_handshake = _skip(_SLOW)  # type: ignore[method-assign]
    UringSSLTests.test_start_tls_slow_client_cancel = _skip(_SLOW)  # type: ignore[method-assign]
UringStartTLSTests.test_create_connection_ssl_slow_handshake = _skip(_SLOW)  # type: ignore[method-assign]
UringStartTLSTests.test_start_tls_slow_client_cancel = _skip(_SLOW)  # type: ignore[method-assign]
UringSubprocessTests.test_kill_issue43884 = _skip(_SLOW)  # type: ignore[method-assign]
UringSubprocessTests.test_read_stdout_after_process_exit = _skip(_SLOW)  # type: ignore[method-assign]


def test_cpython_classes_run_on_uring_loop() -> None:
    """The classes above really get UringEventLoop (a refactor of
    CPython's mixins could silently give them the default loop)."""
    for cls in (UringEventLoopTests, UringSockLowlevelTests, UringSendfileTests):
        made = cls.create_event_loop(None)  # type: ignore[arg-type]
        made.close()
        assert isinstance(made, UringEventLoop)
    for cls2 in (UringStartServerTests, UringStartTLSTests):
        made = cls2.new_loop(None)  # type: ignore[arg-type]
        made.close()
        assert isinstance(made, UringEventLoop)
    policy = uring.asyncio.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, UringEventLoop)
        assert isinstance(loop._selector, UringSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()


# ---------------------------------------------------------------------------
# 2. UringSelector on real fds, next to EpollSelector

R, W = selectors.EVENT_READ, selectors.EVENT_WRITE


@pytest.fixture
def fds() -> Iterator[Callable[..., Any]]:
    """Factory for pipes and socketpairs, all closed at the end."""
    made: List[Any] = []

    def make(kind: str = "pipe") -> Tuple[Any, Any]:
        if kind == "pipe":
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            made.extend((r, w))
            return r, w
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        made.extend((a, b))
        return a, b

    yield make
    for f in made:
        try:
            f.close() if isinstance(f, socket.socket) else os.close(f)
        except OSError:
            pass


@pytest.fixture
def usel() -> Iterator[UringSelector]:
    s = UringSelector()
    yield s
    s.close()


def _both() -> List[selectors.BaseSelector]:
    return [UringSelector(), selectors.EpollSelector()]


def _fdset(ready: List[Tuple[selectors.SelectorKey, int]]) -> Set[Tuple[int, int]]:
    return {(key.fd, ev) for key, ev in ready}


def _fill(sock: socket.socket) -> None:
    """Write until the socket's send buffer is full."""
    chunk = b"x" * 65536
    while True:
        try:
            sock.send(chunk)
        except BlockingIOError:
            return


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            if not sock.recv(1 << 20):
                return
        except BlockingIOError:
            return


def test_registration_api_like_epoll(fds: Callable[..., Any]) -> None:
    """register/modify/unregister/get_key/get_map: the same answers and
    the same exceptions as EpollSelector."""
    r, w = fds()
    a, b = fds("socket")
    for sel in _both():
        with sel:
            with pytest.raises(ValueError):
                sel.register(r, 0)
            with pytest.raises(ValueError):
                sel.register(r, 4)
            with pytest.raises(ValueError):
                sel.register(-1, R)
            with pytest.raises(ValueError):
                sel.register(object(), R)
            k1 = sel.register(r, R, "d1")
            assert k1 == selectors.SelectorKey(r, r, R, "d1")
            with pytest.raises(KeyError):
                sel.register(r, W)
            k2 = sel.register(a, R | W)
            assert (k2.fileobj, k2.fd, k2.events, k2.data) == (a, a.fileno(), R | W, None)
            with pytest.raises(KeyError):
                sel.register(a.fileno(), R)  # the same fd, another object
            assert sel.get_key(r) is k1 and sel.get_key(a) is k2
            assert sel.get_key(a.fileno()) is k2  # looked up through the fd
            with pytest.raises(KeyError):
                sel.get_key(w)
            m = sel.get_map()
            assert len(m) == 2 and set(m) == {r, a.fileno()}
            assert m[a] is k2 and r in m and w not in m
            # modify: same events and data -> the same key; data only; events
            assert sel.modify(r, R, "d1") is k1
            k1b = sel.modify(r, R, "d2")
            assert (k1b.events, k1b.data) == (R, "d2") and sel.get_key(r) is k1b
            k1c = sel.modify(r, R | W, "d3")
            assert (k1c.events, k1c.data) == (R | W, "d3")
            with pytest.raises(KeyError):
                sel.modify(w, R)
            assert sel.unregister(r) is k1c
            with pytest.raises(KeyError):
                sel.unregister(r)
            with pytest.raises(KeyError):
                sel.get_key(r)
            assert len(sel.get_map()) == 1
            # a closed file object is still found by identity
            c, d = socket.socketpair()
            kc = sel.register(c, R)
            c.close()
            assert sel.get_key(c) is kc
            assert sel.unregister(c) is kc
            with pytest.raises(ValueError):
                sel.get_key(c)  # closed and no longer registered: no fd
            d.close()
            sel.unregister(a)
            assert len(sel.get_map()) == 0
        # closed: like selectors, no map and get_key refuses
        assert sel.get_map() is None
        with pytest.raises(RuntimeError):
            sel.get_key(r)


def test_ready_lists_match_epoll(fds: Callable[..., Any]) -> None:
    """One scenario, step by step, on both selectors: the same ready lists."""
    p1r, p1w = fds()
    p2r, p2w = fds()
    s1a, s1b = fds("socket")
    s2a, s2b = fds("socket")
    sels = _both()
    try:
        def step() -> Set[Tuple[int, int]]:
            results = [_fdset(s.select(0)) for s in sels]
            assert results[0] == results[1], results
            return results[0]

        for s in sels:
            s.register(p1r, R, "p1")
            s.register(p2w, W, "p2w")
            s.register(s1a, R | W, "s1")
            s.register(s2a, R)
        # nothing readable yet; the pipe write end and s1a are writable
        assert step() == {(p2w, W), (s1a.fileno(), W)}
        os.write(p1w, b"hello")
        s1b.send(b"x")
        s2b.send(b"y")
        assert step() == {(p1r, R), (p2w, W), (s1a.fileno(), R | W), (s2a.fileno(), R)}
        # level-triggered: nothing read, the same answer again
        assert step() == {(p1r, R), (p2w, W), (s1a.fileno(), R | W), (s2a.fileno(), R)}
        os.read(p1r, 100)
        s1a.recv(10)
        for s in sels:
            s.modify(s1a, R, "s1 read only")
            s.modify(s2a, W)
            s.unregister(p2w)
        assert step() == {(s2a.fileno(), W)}
        for s in sels:
            s.register(p2r, R)
            s.modify(s2a, R | W, "back")
        os.write(p2w, b"z")
        assert step() == {(p2r, R), (s2a.fileno(), R | W)}
        # the keys reported are the current keys
        for s in sels:
            ready = dict((k.fd, k) for k, _ in s.select(0))
            assert ready[s2a.fileno()].data == "back"
    finally:
        for s in sels:
            s.close()


def test_level_triggered_partial_read(usel: UringSelector, fds: Callable[..., Any]) -> None:
    r, w = fds()
    key = usel.register(r, R)
    assert usel.select(0) == []
    os.write(w, b"0123456789")
    assert usel.select(0) == [(key, R)]
    assert os.read(r, 1) == b"0"
    # 9 bytes left and no new write: still reported (epoll-level semantics)
    for expect in b"123456789":
        assert usel.select(0) == [(key, R)]
        assert os.read(r, 1) == bytes([expect])
    assert usel.select(0) == []
    # and blocking select sees the next write
    os.write(w, b"!")
    assert usel.select(5) == [(key, R)]


def test_kernel_multishot_poll_is_not_level_triggered(fds: Callable[..., Any]) -> None:
    """Why UringSelector re-arms one-shot polls: a multishot POLL_ADD posts
    a CQE per wake-up, so data left unread after one is never reported
    again until another write, while a one-shot poll armed now reports it."""
    r, w = fds()
    os.write(w, b"0123456789")
    with uring.Ring(8) as ring:
        ud = ring.prep_poll_add(r, select.POLLIN, multishot=True)
        ring.submit()
        first = ring.wait(1, timeout=5)
        assert [(c.user_data, c.res & select.POLLIN, c.more) for c in first] == [(ud, select.POLLIN, True)]
        assert os.read(r, 1) == b"0"  # 9 bytes stay in the pipe
        assert ring.wait(1, timeout=0.1) == []  # ... and the multishot poll says nothing
        one = ring.prep_poll_add(r, select.POLLIN)  # a one-shot poll armed now does
        ring.submit()
        got = ring.wait(1, timeout=5)
        assert [(c.user_data, bool(c.res & select.POLLIN)) for c in got] == [(one, True)]
        os.write(w, b"!")  # a new wake-up: the multishot poll fires again
        again = ring.wait(1, timeout=5)
        assert [(c.user_data, bool(c.res & select.POLLIN), c.more) for c in again] == [(ud, True, True)]
        ring.prep_poll_remove(ud)
        ring.submit()
        ring.wait(2, timeout=5)


def test_event_write_on_socket(fds: Callable[..., Any]) -> None:
    a, b = fds("socket")
    for sel in _both():
        with sel:
            key = sel.register(a, W)
            assert sel.select(0) == [(key, W)]
            _fill(a)
            assert sel.select(0) == []
            assert sel.select(0.02) == []
            _drain(b)
            assert sel.select(5) == [(key, W)]


def test_hup_and_err_reported_as_read_and_write(fds: Callable[..., Any]) -> None:
    """POLLHUP/POLLERR become EVENT_READ|EVENT_WRITE (filtered by the
    registered events), as EpollSelector reports them."""
    for sel in _both():
        pr, pw = fds()
        qr, qw = fds()
        a, b = fds("socket")
        c, d = fds("socket")
        with sel:
            sel.register(pr, R | W)   # read end; the writer closes: POLLHUP
            sel.register(qw, R | W)   # write end; the reader closes: POLLERR
            sel.register(a, R | W)    # send buffer full, then the peer closes
            sel.register(c, R)        # read only, the peer closes
            _fill(a)
            before = _fdset(sel.select(0))
            os.close(pw)
            os.close(qr)
            b.close()
            d.close()
            after = _fdset(sel.select(0))
            sel.unregister(pr)
            sel.unregister(qw)
        assert before == {(qw, W)}
        assert after == {(pr, R | W), (qw, R | W), (a.fileno(), R | W), (c.fileno(), R)}


def test_timeouts(usel: UringSelector, fds: Callable[..., Any]) -> None:
    r, w = fds()
    usel.register(r, R)
    t0 = time.monotonic()
    assert usel.select(0) == []
    assert usel.select(-1) == []
    # not a speed check: 0 and negative must mean "do not wait at all"
    assert time.monotonic() - t0 < 5
    t0 = time.monotonic()
    assert usel.select(0.05) == []
    assert time.monotonic() - t0 >= 0.049


def test_timeout_holds_through_removal_cqes(usel: UringSelector, fds: Callable[..., Any]) -> None:
    """A poll removal's CQEs (its -ECANCELED, the remove's 0) carry
    nothing to report: select(timeout) goes on waiting, as epoll would."""
    r, w = fds()
    r2, w2 = fds()
    usel.register(r, R)
    usel.register(r2, R)
    assert usel.select(0) == []  # both polls armed
    usel.unregister(r)
    usel.modify(r2, W | R)  # removes the R poll, arms an R|W one
    usel.modify(r2, R)
    t0 = time.monotonic()
    assert usel.select(0.1) == []
    assert time.monotonic() - t0 >= 0.099


def test_unregister_close_reuse_fd_number(usel: UringSelector, fds: Callable[..., Any]) -> None:
    r1, w1 = os.pipe()
    k1 = usel.register(r1, R, "old")
    assert usel.select(0) == []  # the poll on the old pipe is armed
    usel.unregister(r1)
    os.close(r1)
    os.close(w1)
    r2, w2 = fds()
    if r2 != r1:  # make the new pipe's read end take the old number
        os.dup2(r2, r1)
        os.close(r2)
        r2 = r1
    k2 = usel.register(r2, R, "new")
    assert k2 is not k1 and k2.fd == k1.fd
    assert usel.select(0) == []
    os.write(w2, b"data")
    assert usel.select(5) == [(k2, R)]
    assert os.read(r2, 10) == b"data"
    assert usel.select(0) == []


def test_unregister_lets_the_kernel_drop_the_file(usel: UringSelector) -> None:
    """An armed poll holds a reference to its file: a socket closed while
    its poll is armed would stay open in the kernel.  unregister sends the
    POLL_REMOVE at once, so the peer sees the close right after it, with
    no select in between (as on the stock loop)."""
    a, b = socket.socketpair()
    try:
        usel.register(a, R)
        assert usel.select(0) == []  # armed
        usel.unregister(a)
        a.close()
        b.settimeout(5)
        assert b.recv(1) == b""  # EOF now: the kernel holds the file no more
    finally:
        a.close()
        b.close()


def test_close_removes_polls_on_a_shared_ring() -> None:
    with uring.Ring(16) as ring:
        sel = UringSelector(ring)
        a, b = socket.socketpair()
        try:
            sel.register(a, R)
            assert sel.select(0) == []
            sel.close()
            assert sel.get_map() is None
            a.close()
            b.settimeout(5)
            assert b.recv(1) == b""  # the poll let go of the file at close()
            assert not ring.closed  # not the selector's ring to close
        finally:
            a.close()
            b.close()
    own = UringSelector()
    own.close()
    assert own.ring.closed  # its own ring goes with it


def test_many_fds_overflowing_a_small_ring() -> None:
    """More ready fds than the ring's SQ and CQ hold: every one reported,
    again after a partial read, as by epoll."""
    pipes = [os.pipe() for _ in range(100)]
    try:
        with uring.Ring(8, sq_full="submit") as ring:
            sels = [UringSelector(ring), selectors.EpollSelector()]
            for s in sels:
                for r, _ in pipes:
                    s.register(r, R)
            for _, w in pipes:
                os.write(w, b"ab")
            expected = {(r, R) for r, _ in pipes}
            for _ in range(2):
                for s in sels:
                    assert _fdset(s.select(0)) == expected
            for r, _ in pipes[::2]:
                os.read(r, 2)
            for s in sels:
                assert _fdset(s.select(0)) == {(r, R) for r, _ in pipes[1::2]}
            for s in sels:
                s.close()
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_completion_callback_reregistering_a_ready_fd() -> None:
    """A ring completion handled in the same select as a poll result (the
    stream transports run protocol code there) re-registers that fd: the
    new reader must run, not be removed by asyncio for the old key's
    cancelled handle."""
    loop = UringEventLoop()
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.write(w, b"x")
        calls: List[str] = []

        def new_reader() -> None:
            calls.append("new")
            loop.remove_reader(r)

        def on_nop(cqe: Any) -> None:
            loop.remove_reader(r)
            loop.add_reader(r, new_reader)

        loop.add_reader(r, lambda: calls.append("old"))
        ud = loop.uring.ring.prep_nop()
        loop.uring.watch(ud, on_nop)  # its CQE and r's poll CQE: one batch

        async def spin() -> None:
            for _ in range(5):
                await asyncio.sleep(0.01)

        loop.run_until_complete(spin())
        assert calls == ["new"]
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_completion_callback_raising_leaves_polls_armed(fds: Callable[..., Any]) -> None:
    with uring.Ring(16) as ring:
        def boom(cqes: Any) -> None:
            raise ZeroDivisionError

        sel = UringSelector(ring, on_completion=boom)
        r, w = fds()
        key = sel.register(r, R)
        os.write(w, b"x")
        ring.prep_nop()
        with pytest.raises(ZeroDivisionError):
            sel.select(5)
        assert sel.select(5) == [(key, R)]  # re-armed despite the error
        sel.close()


# ---------------------------------------------------------------------------
# 3. run(), the policy, and the ring shared by the loop and the ops


def test_run_gives_uring_loop_sharing_one_ring() -> None:
    async def main() -> Tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.send(b"ping")
            got = await uring.asyncio.sock_recv(a, 10)
        return loop, uring.asyncio.get_ring(), loop._selector.ring, got  # type: ignore[attr-defined]

    loop, lr, selector_ring, got = uring.asyncio.run(main())
    assert isinstance(loop, UringEventLoop)
    assert lr is loop.uring
    assert lr.ring is selector_ring  # the ops' SQEs and the polls: one ring
    assert got == b"ping"
    assert loop.is_closed() and lr.ring.closed


def test_policy_gives_uring_loops() -> None:
    asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())
    try:
        async def main() -> Any:
            loop = asyncio.get_running_loop()
            assert uring.asyncio.get_ring() is loop.uring  # type: ignore[attr-defined]
            assert loop._selector.ring is loop.uring.ring  # type: ignore[attr-defined]
            return loop

        loop = asyncio.run(main())
        assert isinstance(loop, UringEventLoop)
        loop2 = asyncio.new_event_loop()
        assert isinstance(loop2, UringEventLoop) and loop2.uring is not loop.uring
        loop2.close()
    finally:
        asyncio.set_event_loop_policy(None)


_ENTER_COUNT_CHILD = '''
import asyncio, os, socket
import uring.asyncio

N = 100

async def main():
    loop = asyncio.get_running_loop()
    count = [0]
    run_once = loop._run_once
    def counted():
        count[0] += 1
        run_once()
    loop._run_once = counted
    a, b = socket.socketpair()
    a.setblocking(False)
    r, w = os.pipe()
    os.set_blocking(r, False)
    readable = []
    loop.add_reader(r, lambda: readable.append(os.read(r, 1)))
    await asyncio.sleep(0)
    os.getppid()  # start marker for strace
    start = count[0]
    for i in range(N):
        b.send(b"x")
        os.write(w, b"y")
        assert await uring.asyncio.sock_recv(a, 1) == b"x"  # a ring request
        while len(readable) <= i:  # a reader's readiness, from the same ring
            await asyncio.sleep(0)
    iterations = count[0] - start
    os.getppid()  # end marker
    loop.remove_reader(r)
    print(iterations, N)

uring.asyncio.run(main())
'''


def test_one_io_uring_enter_per_iteration(tmp_path: Any) -> None:
    """Under strace: while a task alternates ring requests with a reader's
    readiness, the loop makes at most one io_uring_enter per iteration
    and no epoll/poll/select call at all."""
    import shutil
    import subprocess
    import sys

    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    script = tmp_path / "child.py"
    script.write_text(_ENTER_COUNT_CHILD)
    trace = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(uring.__file__))))
    proc = subprocess.run(
        [strace, "-f", "-qq", "-o", str(trace), "-e",
         "trace=getppid,io_uring_enter,epoll_wait,epoll_pwait,epoll_pwait2,poll,ppoll,select,pselect6",
         sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    iterations, n = map(int, proc.stdout.split())
    calls: List[str] = []
    markers = 0
    for line in trace.read_text().splitlines():
        name = line.split(None, 1)[1].split("(", 1)[0] if " " in line else ""
        if name == "getppid":
            markers += 1
        elif markers == 1 and name[:1].isalpha():  # not "<... resumed>", "--- SIG"
            calls.append(name)
    assert markers == 2
    enters = calls.count("io_uring_enter")
    assert set(calls) <= {"io_uring_enter"}, set(calls)  # no second poller
    assert n <= enters <= iterations, (enters, iterations)


def test_kernel_refuses_level_triggered_multishot_poll(fds: Callable[..., Any]) -> None:
    """The other half of the reason: the kernel does not offer a
    level-triggered multishot poll; ``IORING_POLL_ADD_MULTI`` with
    ``IORING_POLL_ADD_LEVEL`` completes with ``-EINVAL`` at once."""
    r, w = fds()
    os.write(w, b"x")
    with uring.Ring(8) as ring:
        ring.prep(uring.IORING_OP_POLL_ADD, fd=r, op_flags=select.POLLIN, user_data=7,
                  len=int(uring.IORING_POLL_ADD_MULTI | uring.IORING_POLL_ADD_LEVEL))
        assert [(c.user_data, c.res) for c in ring.wait(1, timeout=5)] == [(7, -errno.EINVAL)]
