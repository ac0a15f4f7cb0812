"""Hostile ground, for real: a seccomp filter that refuses io_uring_setup
(EPERM as Docker's default profile answers, then ENOSYS), and an
unprivileged user with a tiny RLIMIT_MEMLOCK.  Each runs in a child
process (a small python script), so this process keeps its io_uring, its
uid and its limits; nothing global (no sysctl) is changed."""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest
from conftest import require_uring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: AUDIT_ARCH_* (include/uapi/linux/audit.h) of the machines we know.
AUDIT_ARCH = {
    "x86_64": 0xC000003E,
    "aarch64": 0xC00000B7,
    "ppc64le": 0xC0000015,
    "s390x": 0x80000016,
    "riscv64": 0xC00000F3,
}


def seccomp_prelude(err: int) -> str:
    """Python source that installs a seccomp filter: io_uring_setup fails
    with *err*, every other system call is allowed, a foreign arch is
    killed.  Pure Python: prctl(PR_SET_NO_NEW_PRIVS) then
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog) via ctypes."""
    arch = AUDIT_ARCH.get(platform.machine())
    return textwrap.dedent(
        f"""
        import ctypes, json, struct, sys
        from uring import syscalls
        nr_setup = syscalls.syscall_numbers()[0]
        BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
        SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO = 0x80000000, 0x00050000
        SECCOMP_RET_ALLOW = 0x7FFF0000
        prog = [
            (BPF_LD_W_ABS, 0, 0, 4),                  # A = seccomp_data.arch
            (BPF_JEQ_K, 1, 0, {arch}),                # our arch: go on
            (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
            (BPF_LD_W_ABS, 0, 0, 0),                  # A = seccomp_data.nr
            (BPF_JEQ_K, 0, 1, nr_setup),              # io_uring_setup?
            (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | {err}),
            (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ]
        raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
        filt = ctypes.create_string_buffer(raw)
        class sock_fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = sock_fprog(len(prog), ctypes.addressof(filt))
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            print(json.dumps({{"skip": "PR_SET_NO_NEW_PRIVS %d" % ctypes.get_errno()}})); sys.exit(0)
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            print(json.dumps({{"skip": "PR_SET_SECCOMP %d" % ctypes.get_errno()}})); sys.exit(0)
        """
    )


def disabled_sysctl() -> "int | None":
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return int(f.read())
    except OSError:
        return None


def run_child(source: str) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip("cannot be set up here: " + result["skip"])
    return result


SECCOMP_BODY = textwrap.dedent(
    r"""
    import uring
    from uring.probe import available
    out = {}
    try:
        uring.Ring(8)
        out["ring"] = "created"
    except uring.UringUnavailableError as exc:
        out["ring"] = [exc.errno, str(exc), getattr(exc, "cause", None)]
    try:
        uring.probe()
        out["probe"] = "probed"
    except uring.UringUnavailableError as exc:
        out["probe"] = [exc.errno, str(exc)]
    a = available()
    out["available"] = [bool(a), a.errno, a.reason, a.cause]
    out["status_seccomp"] = [l for l in open("/proc/self/status") if l.startswith("Seccomp:")]
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_seccomp_refusal_names_the_filter(err: int) -> None:
    """EPERM (Docker's default profile) and ENOSYS from a seccomp filter:
    ``Ring()`` says a seccomp filter is active, never blames
    ``kernel.io_uring_disabled`` (which is not set), and the
    availability helper reports False with the same cause."""
    require_uring()
    if platform.machine() not in AUDIT_ARCH:
        pytest.skip(f"no AUDIT_ARCH known for {platform.machine()}")
    if disabled_sysctl() not in (None, 0):
        pytest.skip("kernel.io_uring_disabled is set here: it would be the cause")
    got = run_child(seccomp_prelude(err) + SECCOMP_BODY)
    assert got["status_seccomp"] and got["status_seccomp"][0].split()[1] == "2"
    code, message, cause = got["ring"]
    assert code == err, message
    assert "seccomp filter is active" in message, message
    assert "io_uring_disabled" not in message and "io_uring_group" not in message
    assert "Seccomp: 2" in message and "io_uring_setup" in message
    assert cause == "seccomp"
    # uring.probe() raises the same; available() is False with the cause.
    assert got["probe"][0] == err and "seccomp filter is active" in got["probe"][1]
    ok, a_errno, reason, a_cause = got["available"]
    assert ok is False and a_errno == err and a_cause == "seccomp"
    assert "seccomp filter is active" in reason


def test_seccomp_eperm_block_layer_falls_back_and_says_why(tmp_path: "os.PathLike[str]") -> None:
    """Under the EPERM filter, ``aio=io_uring`` raises the clear error and
    ``aio=auto`` falls back (native for O_DIRECT, threads for the page
    cache), its reason naming the seccomp filter."""
    require_uring()
    if disabled_sysctl() not in (None, 0):
        pytest.skip("kernel.io_uring_disabled is set here: it would be the cause")
    if platform.machine() not in AUDIT_ARCH:
        pytest.skip(f"no AUDIT_ARCH known for {platform.machine()}")
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
    body = textwrap.dedent(
        f"""
        import uring
        from uring import block
        out = {{}}
        try:
            block.open_image({path!r}, aio="io_uring")
            out["io_uring"] = "opened"
        except uring.UringUnavailableError as exc:
            out["io_uring"] = [exc.errno, str(exc)]
        for cache in ("none", "writeback"):
            with block.open_image({path!r}, aio="auto", cache=cache) as img:
                out[cache] = [img.aio, len(img.pread(4096, 4096)), img.auto_reason]
        print(json.dumps(out))
        """
    )
    got = run_child(seccomp_prelude(errno.EPERM) + body)
    assert got["io_uring"][0] == errno.EPERM and "seccomp filter is active" in got["io_uring"][1]
    for cache, engine in (("none", "native"), ("writeback", "threads")):
        aio, n, reason = got[cache]
        assert (aio, n) == (engine, 4096), got
        assert "seccomp filter is active" in reason and "io_uring_disabled" not in reason


MEMLOCK_CHILD = textwrap.dedent(
    r"""
    import json, os, resource, sys
    import uring, uring.syscalls
    uring.syscalls.default_kernel()  # resolved while the stdlib is still readable
    LIMIT = 64 * 1024
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (LIMIT, LIMIT))
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)  # no CAP_IPC_LOCK from here on: the limit applies
    out = {"uid": os.getuid()}
    ring = uring.Ring(8)  # created unprivileged: its pinned pages are accounted
    try:
        ring.register_buffers([bytearray(1 << 20)])
        out["register"] = "registered"
    except OSError as exc:
        out["register"] = [exc.errno, str(exc)]
    ring.register_buffers_sparse(2)
    try:
        ring.update_buffers(0, [bytearray(1 << 20)])
        out["update"] = "updated"
    except OSError as exc:
        out["update"] = [exc.errno, str(exc)]
    ring.close()
    print(json.dumps(out))
    """
)


def test_memlock_over_the_limit_names_rlimit_memlock() -> None:
    """An unprivileged user (uid 65534, no CAP_IPC_LOCK) with
    RLIMIT_MEMLOCK = 64 KiB registers a 1 MiB buffer: the kernel answers
    ENOMEM, and the message names RLIMIT_MEMLOCK / ulimit -l, the soft and
    hard limit as they are, and what was asked."""
    require_uring()
    if os.geteuid() != 0:
        pytest.skip("dropping to another uid needs root")
    got = run_child(MEMLOCK_CHILD)
    assert got["uid"] == 65534
    for key, op in (("register", "IORING_REGISTER_BUFFERS"),
                    ("update", "IORING_REGISTER_BUFFERS_UPDATE")):
        code, message = got[key]
        assert code == errno.ENOMEM, message
        assert op in message and "Cannot allocate memory" in message
        assert "RLIMIT_MEMLOCK" in message and "ulimit -l" in message
        assert "soft 65536 bytes (64 KiB), hard 65536 bytes (64 KiB)" in message
        assert "1 buffer of 1048576 bytes (1 MiB)" in message
        assert "pages of" in message and "CAP_IPC_LOCK" in message
