"""io_uring blocked for real: a seccomp filter (as container runtimes
install) and the kernel.io_uring_disabled sysctl.  Each runs in a child
process so the test process keeps its io_uring."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import require_uring
from test_hostile import seccomp_prelude

# The filter: io_uring_setup answers ENOSYS (test_hostile.seccomp_prelude),
# then the ring is asked for.
SECCOMP_PRELUDE = seccomp_prelude(errno.ENOSYS)
SECCOMP_CHILD = SECCOMP_PRELUDE + textwrap.dedent(
    """
    import uring
    try:
        uring.Ring(8)
    except uring.UringUnavailableError as exc:
        print("RAISED", exc.errno, exc)
    """
)


def test_seccomp_blocked_setup_raises_unavailable() -> None:
    require_uring()
    out = subprocess.run([sys.executable, "-c", SECCOMP_CHILD], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith('{"skip"'):
        pytest.skip("seccomp filters cannot be installed here: " + out.stdout)
    assert out.stdout.startswith("RAISED 38 "), out.stdout + out.stderr
    assert "seccomp" in out.stdout


SYSCTL = "/proc/sys/kernel/io_uring_disabled"


def test_io_uring_disabled_sysctl_raises_unavailable() -> None:
    """With kernel.io_uring_disabled=2 every io_uring_setup gets EPERM.  The
    sysctl is global, so it is set only for the instant a child process
    tries to create a ring, and restored in a finally."""
    require_uring()
    if not os.path.exists(SYSCTL) or not os.access(SYSCTL, os.W_OK):
        pytest.skip("kernel.io_uring_disabled is not writable here (needs root, Linux 6.6+)")
    with open(SYSCTL) as f:
        old = f.read().strip()
    child = "import uring\ntry:\n    uring.Ring(4)\nexcept uring.UringUnavailableError as e:\n    print('RAISED', e.errno, e)\n"
    try:
        with open(SYSCTL, "w") as f:
            f.write("2")
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             timeout=60)
    finally:
        with open(SYSCTL, "w") as f:
            f.write(old)
    assert out.stdout.startswith("RAISED 1 "), out.stdout + out.stderr
    assert "io_uring_disabled" in out.stdout


def test_block_layer_with_io_uring_blocked(tmp_path: "os.PathLike[str]") -> None:
    """Under the same seccomp filter: aio=io_uring raises the clear error,
    aio=auto falls back (native for O_DIRECT, threads for the page cache)
    and says why, and the image still reads."""
    require_uring()
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
    child = SECCOMP_PRELUDE + textwrap.dedent(f'''
        import uring
        from uring import block
        try:
            block.open_image({path!r}, aio="io_uring")
        except uring.UringUnavailableError as exc:
            print("RAISED", exc.errno)
        for cache in ("none", "writeback"):
            with block.open_image({path!r}, aio="auto", cache=cache) as img:
                data = img.pread(4096, 4096)
                print("AUTO", cache, img.aio, len(data), "|", img.auto_reason)
        ''')
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith('{"skip"'):
        pytest.skip("seccomp filters cannot be installed here: " + out.stdout)
    lines = out.stdout.splitlines()
    assert lines[0] == "RAISED 38", out.stdout
    assert lines[1].startswith("AUTO none native 4096 |") and "io_uring unavailable" in lines[1]
    assert lines[2].startswith("AUTO writeback threads 4096 |") and "seccomp" in lines[2]
