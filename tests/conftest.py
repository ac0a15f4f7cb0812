"""Shared fixtures.

Policy: a test may skip because io_uring is unavailable only when
``URING_REQUIRE_KERNEL`` is not set; CI sets it, and there a missing io_uring
is a failure.  An opcode or feature this kernel lacks is found with the
probe and skips with the reason.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import time
from types import CodeType
from typing import Any, Iterator, Tuple

import pytest

import uring
from uring import abi

REQUIRE_KERNEL = os.environ.get("URING_REQUIRE_KERNEL", "") not in ("", "0")


def _availability() -> str:
    try:
        with uring.Ring(1):
            return ""
    except uring.UringUnavailableError as exc:
        return str(exc)


_UNAVAILABLE = _availability()


def require_uring() -> None:
    if _UNAVAILABLE:
        if REQUIRE_KERNEL:
            pytest.fail(f"URING_REQUIRE_KERNEL is set but {_UNAVAILABLE}")
        pytest.skip(_UNAVAILABLE)


def require_op(op: int) -> None:
    require_uring()
    if not uring.probe().supports(op):
        pytest.skip(f"{uring.abi.IoringOp(op).name} is not supported by kernel {os.uname().release}")


def try_ring(*args: object, **kwargs: object) -> uring.Ring:
    """A ring with the given set-up; skips (with the kernel's reason) when
    this kernel refuses that set-up flag, e.g. a flag newer than it."""
    require_uring()
    try:
        return uring.Ring(*args, **kwargs)  # type: ignore[arg-type]
    except OSError as exc:
        if exc.errno in (22, 95):  # EINVAL / EOPNOTSUPP: flag unknown to this kernel
            pytest.skip(f"kernel {os.uname().release} refuses {kwargs}: {exc}")
        raise


@pytest.fixture
def pipe() -> Iterator[Tuple[int, int]]:
    """A pipe (read end, write end), both closed after the test (either may
    have been closed by it already)."""
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            try:
                os.close(fd)
            except OSError:
                pass


@contextlib.contextmanager
def interrupted_at(code: CodeType, nth: int) -> Iterator[None]:
    """Raise ``KeyboardInterrupt`` as the *nth* call of the function whose
    code is *code* starts (a trace function: the exact call, not a timed
    signal), as a Ctrl-C landing there would; the block must raise it."""
    calls = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code is code:
            calls[0] += 1
            if calls[0] == nth:
                raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        sys.settrace(None)


def submit_issued(ring: uring.Ring, timeout: float = 5.0) -> int:
    """``ring.submit()``, then (SQPOLL) wait until the kernel thread has
    consumed what was submitted; returns what ``submit`` returned.

    Without SQPOLL, ``submit`` returns once the kernel has taken and issued
    every SQE (a pipe read is armed, a file looked up).  With SQPOLL it only
    publishes the tail (and wakes the thread): the thread consumes the SQEs
    on its own time, and the kernel publishes its SQ head only after issuing
    them.  A test that acts on "the request is in flight now" (replaces a
    registration, cancels, closes an fd) calls this instead of ``submit``."""
    n = ring.submit()
    if ring.setup_flags & abi.IORING_SETUP_SQPOLL:
        deadline = time.monotonic() + timeout
        while ring.sq_ready:
            if time.monotonic() > deadline:
                raise AssertionError(f"the SQPOLL thread left {ring.sq_ready} SQEs unconsumed")
            time.sleep(0.0005)
    return n


#: A test that runs this long is stuck (a wait the kernel never answers):
#: dump every thread's stack and end the run, rather than let CI hang.
HANG_SECONDS = 300


@pytest.fixture(autouse=True)
def _hang_guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


#: The ring configurations the op tests run under (issue 12, item 7): name ->
#: the ``uring.Ring`` keyword arguments.  Each changes something a test could
#: silently depend on: the SQE/CQE size, the SQ indirection array, who
#: consumes the SQ (the SQPOLL thread, on its own time), and when completions
#: are posted (DEFER_TASKRUN: only when the issuing thread enters the kernel).
RING_CONFIGS = {
    "plain": {},
    "sqe128-cqe32": {"flags": abi.IORING_SETUP_SQE128 | abi.IORING_SETUP_CQE32},
    # The ring tries IORING_SETUP_NO_SQARRAY first; this one keeps the array.
    "sq-array": {"sq_array": True},
    # A short idle keeps the kernel thread from spinning on this 2-core box
    # for long after each test; the thread sleeping and being woken is
    # exercised as a bonus.
    "sqpoll": {"flags": abi.IORING_SETUP_SQPOLL, "sq_thread_idle": 2},
    "defer-taskrun": {"flags": abi.IORING_SETUP_SINGLE_ISSUER | abi.IORING_SETUP_DEFER_TASKRUN},
}

#: The modules whose ``ring`` runs under every configuration of RING_CONFIGS;
#: everywhere else ``ring`` is the plain one.
RING_CONFIG_MODULES = frozenset({
    "test_ops", "test_ops_core", "test_ops_files", "test_ops_net", "test_ops_paths",
    "test_ops_control", "test_register",
})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ring_configs(*names, reason): run this op test's ``ring`` only under the named "
        "configurations of conftest.RING_CONFIGS (the reason is required: why the others "
        "cannot hold)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``ring_config`` (hence ``ring``) for the op test modules."""
    if "ring_config" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    if module not in RING_CONFIG_MODULES:
        return
    names = list(RING_CONFIGS)
    marker = metafunc.definition.get_closest_marker("ring_configs")
    if marker is not None:
        if not marker.kwargs.get("reason"):
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: ring_configs needs a reason=")
        unknown = set(marker.args) - set(RING_CONFIGS)
        if unknown or not marker.args:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown ring configs {unknown}")
        names = list(marker.args)
    metafunc.parametrize("ring_config", names, indirect=True, ids=names)


@pytest.fixture
def ring_config(request: pytest.FixtureRequest) -> str:
    """The name of the configuration ``ring`` is built with ("plain" outside
    the op test modules, or for a test marked to run under it only)."""
    return getattr(request, "param", "plain")


@pytest.fixture
def ring(ring_config: str) -> Iterator[uring.Ring]:
    """A 64-entry ring, in one of RING_CONFIGS.

    The op test modules (RING_CONFIG_MODULES: test_ops*.py and
    test_register.py) run every test that takes ``ring`` under all five
    configurations (ids ``[plain]``, ``[sqe128-cqe32]``, ``[sq-array]``,
    ``[sqpoll]``, ``[defer-taskrun]``): the full set under each, no subset,
    since they are fast (about 3 s under one configuration, 15 s for all five
    on a quiet 2-core machine).  A test that inherently needs one
    configuration says so with ``@pytest.mark.ring_configs("plain",
    reason=...)``.  Rings a test makes itself (``uring.Ring(8)``) stay plain.
    Every other module gets the plain ring.  A configuration the kernel
    refuses (EINVAL/EOPNOTSUPP from ``io_uring_setup``) skips with the
    kernel's reason; io_uring missing altogether follows ``require_uring``.
    """
    r = try_ring(64, **RING_CONFIGS[ring_config])
    with r:
        yield r


@pytest.fixture
def datafile(tmp_path: "os.PathLike[str]") -> Iterator[tuple]:
    """A 64 KiB file of known bytes, open read-write: (fd, path, content)."""
    path = os.path.join(os.fspath(tmp_path), "data.bin")
    content = bytes((i * 7 + i // 256) & 0xFF for i in range(65536))
    with open(path, "wb") as f:
        f.write(content)
    fd = os.open(path, os.O_RDWR)
    try:
        yield fd, path, content
    finally:
        os.close(fd)


# Hypothesis profiles: the default keeps CI bounded; ``--hypothesis-profile=long``
# runs many more programs (by hand, e.g. against a new kernel).
from hypothesis import settings as _settings  # noqa: E402

_settings.register_profile("ci", max_examples=40, stateful_step_count=40, deadline=None)
_settings.register_profile("long", max_examples=2000, stateful_step_count=80, deadline=None)
_settings.load_profile("ci")


# -- the two asyncio loops the asyncio tests run on ---------------------------------------


class Loop:
    """How a test runs its coroutine: ``run(coro)`` on the stock loop (a ring
    attached on first use) or on ``uring.asyncio``'s own loop;
    ``run.new_event_loop()`` for a test that drives a loop by hand."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, coro: "object") -> "object":
        import asyncio

        import uring.asyncio as ua

        if self.kind == "default":
            return asyncio.run(coro)  # type: ignore[arg-type]
        return ua.run(coro)

    def new_event_loop(self) -> "object":
        import asyncio

        import uring.asyncio as ua

        if self.kind == "default":
            return asyncio.new_event_loop()
        return ua.new_event_loop()

    def __repr__(self) -> str:
        return f"Loop({self.kind})"


@pytest.fixture(params=["default", "uring"])
def run(request: pytest.FixtureRequest) -> Loop:
    require_uring()
    return Loop(request.param)
