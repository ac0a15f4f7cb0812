"""Shared fixtures.

Policy: a test may skip because io_uring is unavailable only when
``URING_REQUIRE_KERNEL`` is not set; CI sets it, and there a missing io_uring
is a failure.  An opcode or feature this kernel lacks is found with the
probe and skips with the reason.
"""

from __future__ import annotations

import faulthandler
import os
from typing import Iterator

import pytest

import uring

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


@pytest.fixture
def ring() -> Iterator[uring.Ring]:
    require_uring()
    with uring.Ring(64) as r:
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
