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
"""

from __future__ import annotations

import asyncio
import select
import selectors
import time
from asyncio import unix_events
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from .. import abi
from ..ops import Ring
from .driver import LoopRing

__all__ = ["EventLoopPolicy", "UringEventLoop", "UringSelector", "new_event_loop", "run"]

_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_F_MORE = int(abi.IORING_CQE_F_MORE)


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
    """``get_map()``: file object -> key, looked up through its fd."""

    def __init__(self, selector: "UringSelector") -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._selector._keys[self._selector._fd_of(fileobj)]
        except (KeyError, ValueError):
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Any:
        return iter(self._selector._keys)


class UringSelector(selectors.BaseSelector):
    """A selector on io_uring: every registered fd has one one-shot
    ``POLL_ADD`` armed for the events asked; a report re-arms it in the next
    ``select``.

    ring:          the ring to poll with (default: a new 256-entry ring).
    on_completion: called with the CQEs of the ring that are not polls
                   (the ``LoopRing`` sharing the ring dispatches them).
    """

    def __init__(self, ring: Optional[Ring] = None,
                 on_completion: Optional[Callable[[List[Any]], None]] = None) -> None:
        self.ring = ring if ring is not None else Ring(256, sq_full="submit")
        self.on_completion = on_completion
        self._keys: Dict[int, selectors.SelectorKey] = {}
        self._map = _KeyMapping(self)
        # fd -> (user_data, poll mask) of the poll armed for it
        self._armed: Dict[int, Tuple[int, int]] = {}
        # user_data of a poll -> its fd; None: a poll we removed (drop its CQE)
        self._polls: Dict[int, Optional[int]] = {}
        self._to_arm: Set[int] = set()

    # -- registration -------------------------------------------------------------

    def _fd_of(self, fileobj: Any) -> int:
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
        fd = self._fd_of(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        self._to_arm.add(fd)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._fd_of(fileobj)
        try:
            key = self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        self._disarm(fd)
        self._to_arm.discard(fd)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self._fd_of(fileobj)
        try:
            old = self._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if not events or events & ~(_EVENT_READ | _EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        key = old._replace(events=events, data=data)
        self._keys[fd] = key
        if events != old.events:
            self._disarm(fd)
            self._to_arm.add(fd)
        return key

    def _disarm(self, fd: int) -> None:
        """Remove the poll armed for *fd* (``IORING_OP_POLL_REMOVE``, sent
        with the next enter; the poll's ``-ECANCELED`` CQE is dropped).
        Until then the poll holds its reference to the file."""
        armed = self._armed.pop(fd, None)
        if armed is not None and not self.ring.closed:
            ud = armed[0]
            self._polls[ud] = None
            self._polls[self.ring.prep_poll_remove(ud)] = None

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
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
        the rest go to ``on_completion``."""
        if self._to_arm:
            self._arm()
        ring = self.ring
        if timeout is not None and timeout <= 0:
            ring.submit()
            cqes = ring.reap(raw=True)
        elif timeout is None:
            cqes = ring.wait(1, raw=True)
        else:
            cqes = ring.wait(1, timeout=timeout, raw=True)
        if not cqes:
            return []
        ready: List[Tuple[selectors.SelectorKey, int]] = []
        others: List[Any] = []
        polls, armed, keys, to_arm = self._polls, self._armed, self._keys, self._to_arm
        for cqe in cqes:
            ud = cqe[0]
            if ud not in polls:
                others.append(cqe)
                continue
            fd = polls.pop(ud)
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
        if others and self.on_completion is not None:
            self.on_completion(others)
        return ready

    def close(self) -> None:
        self._keys.clear()
        self._armed.clear()
        self._polls.clear()
        self._to_arm.clear()


class UringEventLoop(unix_events._UnixSelectorEventLoop):  # type: ignore[name-defined,misc]
    """asyncio's Unix event loop with readiness polling on io_uring and a
    ring for I/O requests (``loop.uring``, what ``uring.asyncio`` ops use
    on this loop).

    entries: the ring's SQ size (the CQ is twice that).
    """

    def __init__(self, entries: int = 256) -> None:
        ring = Ring(entries, sq_full="submit")
        self.uring = LoopRing(self, ring=ring, watch=False)
        selector = UringSelector(ring, on_completion=self.uring.dispatch)
        self._uring_ring = ring
        super().__init__(selector)

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        self.uring.close()
        super().close()
        self._uring_ring.close()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """An event loop policy whose loops are ``UringEventLoop``s:
    ``asyncio.set_event_loop_policy(uring.asyncio.EventLoopPolicy())``."""

    def new_event_loop(self) -> UringEventLoop:  # type: ignore[override]
        return UringEventLoop()


def new_event_loop() -> UringEventLoop:
    return UringEventLoop()


def run(main: Any, *, debug: Optional[bool] = None) -> Any:
    """``asyncio.run(main)`` on a ``UringEventLoop``."""
    runner_cls = getattr(asyncio, "Runner", None)
    if runner_cls is not None:  # 3.11+
        with runner_cls(debug=debug, loop_factory=UringEventLoop) as runner:
            return runner.run(main)
    loop = UringEventLoop()  # pragma: no cover - Python 3.9/3.10
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


del time
