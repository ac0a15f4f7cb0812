"""An asyncio event loop whose readiness polling is io_uring: the talk's
"switch the main loop to io_uring".

``UringSelector`` is a ``selectors.BaseSelector`` made of ``IORING_OP_POLL_ADD``
requests, and ``UringEventLoop`` is asyncio's own Unix selector loop built on
it, so timers, ``call_soon`` ordering, readers and writers, signals,
subprocess pipes and transports are asyncio's code, unchanged; only the
question "which fds are ready?" is asked of the ring.  The same ring
carries the loop's ``LoopRing`` (``loop.uring``): one ``io_uring_enter``
per iteration submits the tick's requests *and* waits for readiness and
completions together, with the loop's timeout as an ``IORING_ENTER_EXT_ARG``
timeout.

Why one-shot polls, re-armed, and not ``IORING_POLL_ADD_MULTI``: a
selector promises level-triggered readiness (an fd whose data was only
partly read is reported again), and a multishot poll posts one CQE per
*wake-up* of the file, so unread data left after a wake-up is never
reported again (``tests/test_asyncio_loop.py`` shows the kernel doing
exactly that).  A one-shot poll checks the file's state when it is armed,
so re-arming after each report gives epoll's level-triggered answer; the
re-arm costs one SQE in the next iteration's batch, no extra system call.

An armed poll holds a reference to its file, so ``unregister`` (asyncio's
``remove_reader``/``remove_writer`` of an fd's last event) submits the
poll's ``IORING_OP_POLL_REMOVE`` at once: asyncio closes a socket right
after it (``Server.close``), and the socket must then be closed in the
kernel (a connect refused, the port free), as on asyncio's own loop.  A
poll that already reported is not armed any more, so the usual
``add_reader``/report/``remove_reader`` round costs no system call.
"""

from __future__ import annotations

import asyncio
import select
import selectors
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from .. import abi
from ..errors import UringUnavailableError
from ..ops import Ring
from . import fallback as _backend
from .driver import LoopRing

__all__ = ["EventLoopPolicy", "UringEventLoop", "UringSelector", "new_event_loop", "run"]

_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_F_MORE = int(abi.IORING_CQE_F_MORE)
_monotonic = time.monotonic


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _KeyMapping(Mapping[Any, selectors.SelectorKey]):
    """``get_map()``: file object -> key, looked up through its fd (the
    selector's own fd -> key dict and its ``fd_of``)."""

    def __init__(self, keys: Dict[int, selectors.SelectorKey], fd_of: Callable[[Any], int]) -> None:
        self._keys = keys
        self._fd_of = fd_of

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        # as selectors._SelectorMapping: an object with no valid fd that is
        # not registered is a ValueError, an fd not registered a KeyError
        key = self._keys.get(self._fd_of(fileobj))
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        return key

    def __iter__(self) -> Any:
        return iter(self._keys)


class UringSelector(selectors.BaseSelector):
    """A selector on io_uring: every registered fd has one one-shot
    ``POLL_ADD`` armed for the events asked; a report re-arms it in the next
    ``select``.

    ring:          the ring to poll with (default: a new 256-entry ring).
    on_completion: called with the CQEs of the ring that are not polls,
                   each paired with its record (``Ring.reap_records``; the
                   ``LoopRing`` sharing the ring dispatches them to the
                   records' owners).
    before_enter:  called before each ``io_uring_enter`` the selector makes
                   (the ``LoopRing``'s ``file_staged``: the tick's staged
                   reads and writes go into the SQ, to be submitted with
                   the polls).
    """

    def __init__(self, ring: Optional[Ring] = None,
                 on_completion: Optional[Callable[[List[Tuple[Tuple[int, ...], Any]]], None]] = None
                 ) -> None:
        self._owns_ring = ring is None
        self.ring = ring if ring is not None else Ring(256, sq_full="submit")
        self.on_completion = on_completion
        self.before_enter: Optional[Callable[[], None]] = None
        self._closed = False
        self._keys: Dict[int, selectors.SelectorKey] = {}
        self._map: Optional[_KeyMapping] = _KeyMapping(self._keys, self.fd_of)
        # fd -> (user_data, poll mask) of the poll armed for it
        self._armed: Dict[int, Tuple[int, int]] = {}
        # user_data of a poll -> its fd; None: a poll we removed (drop its CQE)
        self._polls: Dict[int, Optional[int]] = {}
        self._to_arm: Set[int] = set()
        # A POLL_REMOVE is prepared and not submitted yet (sent by the next
        # enter, or at once by ``unregister``).
        self._unsent_removes = False

    # -- registration -------------------------------------------------------------

    def fd_of(self, fileobj: Any) -> int:
        """The fd of *fileobj* (an fd or an object with ``fileno()``), or of
        the registered object that is *fileobj* once it is closed."""
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            for key in self._keys.values():  # a closed file object, as selectors allows
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(_EVENT_READ | _EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        fd = self.fd_of(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        self._to_arm.add(fd)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self.fd_of(fileobj)
        try:
            key = self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        self._disarm(fd)
        self._to_arm.discard(fd)
        if self._unsent_removes:
            self._send_removes()
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self.fd_of(fileobj)
        try:
            old = self._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if not events or events & ~(_EVENT_READ | _EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        if events == old.events and not data != old.data:
            return old  # as selectors: an unchanged key is the same key
        key = old._replace(events=events, data=data)
        self._keys[fd] = key
        if events != old.events:
            self._disarm(fd)
            self._to_arm.add(fd)
        return key

    def _disarm(self, fd: int) -> None:
        """Remove the poll armed for *fd* (``IORING_OP_POLL_REMOVE``; the
        poll's ``-ECANCELED`` CQE is dropped).  ``modify`` leaves it for the
        next enter (the fd stays registered, a new poll follows);
        ``unregister`` sends it at once (``_send_removes``)."""
        armed = self._armed.pop(fd, None)
        if armed is not None and not self.ring.closed:
            ud = armed[0]
            self._polls[ud] = None
            self._polls[self.ring.prep_poll_remove(ud)] = None
            self._unsent_removes = True

    def _send_removes(self) -> None:
        """Submit the prepared ``POLL_REMOVE``s now (with whatever else the
        tick prepared), so that when ``unregister`` returns no poll of ours
        holds a reference to the file: asyncio closes a socket right after
        ``remove_reader`` (``Server.close``, ``sock_accept``...), and a poll
        left armed until the next enter kept a listening socket accepting
        and its port bound.  The kernel cancels the poll while the enter
        runs and drops its file reference in the task work run before the
        enter returns to us (this ring has no ``DEFER_TASKRUN``); the CQEs
        (dropped) are reaped with the next batch.  One system call per
        removal of a poll still armed: a poll that reported (the
        ``sock_recv``/``add_reader``-then-``remove_reader`` pattern) is no
        longer armed, and costs nothing here.  Where the kernel takes
        nothing now (``EAGAIN``/``EBUSY``), the next enter sends it."""
        if self.ring.closed:
            self._unsent_removes = False
            return
        try:
            self.ring.submit()
        except OSError:
            return
        self._unsent_removes = False

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map  # type: ignore[return-value]  # None once closed, as in selectors

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        if self._map is None:
            raise RuntimeError("Selector is closed")
        return self._map[fileobj]

    # -- waiting ----------------------------------------------------------------------

    def _arm(self) -> None:
        ring, keys, armed, polls = self.ring, self._keys, self._armed, self._polls
        for fd in self._to_arm:
            key = keys.get(fd)
            if key is None or fd in armed:
                continue
            mask = (_POLLIN if key.events & _EVENT_READ else 0) | \
                (_POLLOUT if key.events & _EVENT_WRITE else 0)
            ud = ring.prep_poll_add(fd, mask)
            armed[fd] = (ud, mask)
            polls[ud] = fd
        self._to_arm.clear()

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        """Arm what needs arming, submit everything prepared, wait up to
        *timeout* (None: until something happens; 0: not at all) for a
        CQE, and sort the CQEs: poll results become ``(key, events)``,
        the rest go to ``on_completion``.

        Like ``EpollSelector.select`` this returns early only with
        something to report: CQEs that carry nothing (a removed poll's
        ``-ECANCELED``, a ``POLL_REMOVE``'s own result) do not end the wait.
        CQEs for ``on_completion`` do: the loop has callbacks to run."""
        ring = self.ring
        poll_only = timeout is not None and timeout <= 0
        deadline = None if timeout is None or poll_only else _monotonic() + timeout
        while True:
            if self._to_arm:
                self._arm()
            if self.before_enter is not None:
                self.before_enter()
            self._unsent_removes = False  # this enter submits them
            if poll_only:
                ring.submit()
                done = ring.reap_records()
            elif deadline is None:
                done = ring.reap_records(wait=1)
            else:
                done = ring.reap_records(wait=1, timeout=timeout)
            if done:
                ready, woke = self._sort(done)
                if woke:
                    return ready
            if poll_only:
                return []
            if deadline is not None:
                timeout = deadline - _monotonic()
                if timeout <= 0:
                    return []

    def _sort(self, done: List[Any]) -> Tuple[List[Tuple[selectors.SelectorKey, int]], bool]:
        """(ready keys, whether anything was reported), from the ``(cqe,
        record)`` pairs reaped: hand the non-poll ones to ``on_completion``
        *first*, then turn the poll CQEs into
        ``(key, events)`` against the registrations as they are after it.
        ``on_completion`` runs transport and protocol code (``data_received``
        ...) that may unregister or re-register an fd whose poll is in this
        same batch: a key computed before it would hand asyncio a stale key
        whose cancelled handle makes ``_process_events`` remove the *new*
        registration.  The poll bookkeeping (re-arming) happens even when
        ``on_completion`` raises, so no fd is left without a poll."""
        polls = self._polls
        mine: List[Any] = []
        others: List[Any] = []
        for pair in done:
            (mine if pair[0][0] in polls else others).append(pair)
        try:
            if others and self.on_completion is not None:
                self.on_completion(others)
        finally:
            ready = self._ready(mine) if mine else []
        return ready, bool(ready or others)

    def _ready(self, done: List[Any]) -> List[Tuple[selectors.SelectorKey, int]]:
        ready: List[Tuple[selectors.SelectorKey, int]] = []
        polls, armed, keys, to_arm = self._polls, self._armed, self._keys, self._to_arm
        for cqe, _record in done:
            ud = cqe[0]
            fd = polls.pop(ud, None)
            if fd is None:
                continue  # a removed poll, or a removal's own CQE
            if armed.get(fd, (None,))[0] == ud:
                del armed[fd]
            key = keys.get(fd)
            if key is None:
                continue
            to_arm.add(fd)
            revents = cqe[1]
            if revents < 0:
                # The kernel could not poll the file (EBADF after a close
                # without unregister, ...): report it ready, as epoll
                # reports an error, so its callback meets the error.
                events = key.events
            else:
                events = 0
                if revents & ~_POLLIN:
                    events |= _EVENT_WRITE
                if revents & ~_POLLOUT:
                    events |= _EVENT_READ
                events &= key.events
            if events:
                ready.append((key, events))
        return ready

    def close(self) -> None:
        """Forget every registration and remove the polls armed for them
        (submitted now, so the kernel lets go of the files); a ring the
        selector made itself is closed."""
        if self._closed:
            return
        self._closed = True
        ring = self.ring
        for fd in list(self._armed):
            self._disarm(fd)
        self._keys.clear()
        self._to_arm.clear()
        self._map = None
        if not ring.closed:
            try:
                ring.submit()
            except OSError:  # pragma: no cover - best effort at teardown
                pass
            if self._owns_ring:
                ring.close()


class UringEventLoop(asyncio.SelectorEventLoop):
    """asyncio's Unix event loop with readiness polling on io_uring and a
    ring for I/O requests (``loop.uring``, what ``uring.asyncio`` ops use
    on this loop).

    entries: the ring's SQ size (the CQ is twice that).

    Threads: like any asyncio loop, used from the thread that runs it
    (it may be made in another); its ring enforces that, raising
    ``uring.RingThreadError`` for a call from any other thread.  Use
    ``call_soon_threadsafe``/``asyncio.run_coroutine_threadsafe`` from
    elsewhere.
    """

    #: A loop is closed until asyncio's ``__init__`` has made it (that sets
    #: the instance's own ``_closed``): one whose ring could not be set up
    #: (``UringUnavailableError``) leaves ``BaseEventLoop.__del__`` nothing
    #: to close or warn about.
    _closed = True

    def __init__(self, entries: int = 256) -> None:
        ring = Ring(entries, sq_full="submit")
        try:
            selector = UringSelector(ring)
            self._uring_ring = ring
            super().__init__(selector)
        except BaseException:
            ring.close()  # not left to the garbage collector
            self._closed = True  # asyncio's __init__ may have got as far as opening it
            raise
        try:
            # Made once the loop is: the LoopRing makes a future of it.
            self.uring = LoopRing(self, ring=ring, watch=False, stage=True)
        except BaseException:
            super().close()
            ring.close()
            raise
        selector.on_completion = self.uring.dispatch
        selector.before_enter = self.uring.file_staged

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        lr = getattr(self, "uring", None)
        if lr is not None:
            lr.close()
        super().close()
        self._uring_ring.close()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """An event loop policy whose loops are ``UringEventLoop``s:
    ``asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())``
    (asyncio's default loop where io_uring is unavailable, as
    ``new_event_loop``)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()


def new_event_loop(backend: Optional[str] = None) -> asyncio.AbstractEventLoop:
    """A ``UringEventLoop``; where io_uring is unavailable
    (``uring.asyncio.backend()`` is ``"threads"``, one ``RuntimeWarning``
    names the cause) asyncio's default loop (``asyncio.SelectorEventLoop``),
    and with io_uring requested (``URING_ASYNCIO_BACKEND=io_uring`` or
    *backend* ``"io_uring"``) ``uring.UringUnavailableError``.  *backend*,
    when given, is ``set_backend(backend)`` first (for the process)."""
    if backend is not None:
        _backend.set_backend(backend)
    if _backend.backend() == "threads":
        return asyncio.SelectorEventLoop()
    try:
        return UringEventLoop()
    except UringUnavailableError as exc:
        _backend.refused_error(exc)
        raise


def run(main: Any, *, debug: Optional[bool] = None, backend: Optional[str] = None) -> Any:
    """``asyncio.run(main)`` on a ``UringEventLoop`` (on asyncio's default
    loop where io_uring is unavailable; see ``new_event_loop``, which
    *backend* is given to)."""
    if backend is not None:
        _backend.set_backend(backend)
    # Decided here, not in the loop factory asyncio's Runner calls: the
    # fallback's one RuntimeWarning names the line that called run().
    _backend.backend()
    runner_cls = getattr(asyncio, "Runner", None)
    if runner_cls is not None:  # 3.11+
        with runner_cls(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    loop = new_event_loop()  # pragma: no cover - Python 3.9/3.10
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:  # pragma: no cover - 3.9/3.10
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for t in tasks:
        if not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception during uring.asyncio.run() shutdown",
                                         "exception": t.exception(), "task": t})


