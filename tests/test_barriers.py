"""The barriers: the machine-code fence really runs, the fallbacks work, the
encodings for the other architectures disassemble to what they claim."""

from __future__ import annotations

import mmap
import platform
import shutil
import subprocess
from typing import Iterator

import pytest

from uring import barriers


@pytest.fixture
def restore_fence() -> Iterator[None]:
    impl, kind = barriers._fence_impl, barriers.FENCE_KIND
    yield
    barriers._fence_impl, barriers.FENCE_KIND = impl, kind


def test_machine_code_fence_runs() -> None:
    """The code page returns MAGIC: the bytes we wrote were executed."""
    if barriers._code_arch() is None:
        pytest.skip(f"no machine-code fence for {platform.machine()}")
    assert barriers.FENCE_KIND.startswith("machine-code:")
    assert barriers.fence_probe() == barriers.MAGIC
    barriers.full_fence()  # and as the ring calls it


def test_tso_machines_need_no_acquire_release_instruction() -> None:
    if platform.machine() == "x86_64":
        assert barriers.STRONG_ORDERING
        assert barriers.acquire_fence is barriers._no_fence
    else:  # pragma: no cover - other machines
        assert barriers.acquire_fence is barriers._no_fence or barriers.acquire_fence is barriers.full_fence


def test_membarrier_fallback(restore_fence: None) -> None:
    assert barriers._select_fence("membarrier") == "membarrier"
    assert barriers.fence_probe() == barriers.MAGIC
    barriers.full_fence()


def test_refused_exec_memory_falls_back_to_membarrier(
    restore_fence: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(address: int, length: int, prot: int) -> None:
        raise PermissionError(13, "mprotect(PROT_EXEC): Permission denied")

    monkeypatch.setattr(barriers, "_mprotect", refuse)
    assert barriers._select_fence() == "membarrier"
    assert barriers.fence_probe() == barriers.MAGIC
    with pytest.raises(PermissionError):
        barriers._select_fence("machine-code")


def test_instrument_counts_fences() -> None:
    with barriers.instrument() as counter:
        barriers.full_fence()
        barriers.full_fence()
    assert counter.count == 2
    barriers.full_fence()
    assert counter.count == 2  # restored


def test_load_acquire_store_release_round_trip() -> None:
    page = mmap.mmap(-1, mmap.PAGESIZE)
    view = memoryview(page).cast("I")
    barriers.store_release(view, 3, 0xDEADBEEF)
    assert barriers.load_acquire(view, 3) == 0xDEADBEEF
    assert page[12:16] == (0xDEADBEEF).to_bytes(4, "little")
    view.release()
    page.close()


# objdump's name for each architecture, and the mnemonics its disassembly must show.
DISASM = {
    "x86_64": ("i386:x86-64", ["mfence", "mov", "ret"]),
    "i386": ("i386", ["lock or", "mov", "ret"]),
    "aarch64": ("aarch64", ["dmb", "ish", "mov", "ret"]),
    "armv7": ("arm", ["dmb", "ish", "movw", "bx"]),
    "riscv64": ("riscv:rv64", ["fence", "rw,rw", "li", "ret"]),
    "ppc64le": ("powerpc:common64", ["sync", "li", "blr"]),
    "loongarch64": ("loongarch64", ["dbar", "ori", "jirl"]),
    # bcr 14,0 is printed as its extended mnemonic, "bnor %r0".
    "s390x": ("s390:64-bit", ["bcr|bnor", "lghi", "br"]),
}


def objdump() -> str:
    for name in ("objdump-multiarch", "objdump"):
        path = shutil.which(name)
        if path:
            return path
    return ""


@pytest.mark.parametrize("arch", sorted(barriers.CODE))
def test_encodings_disassemble_to_the_fence(arch: str, tmp_path: "object") -> None:
    """An independent check of encodings this machine cannot run: binutils
    disassembles each code page (binutils-multiarch knows every target)."""
    tool = objdump()
    machine, expected = DISASM[arch]
    if not tool:
        pytest.skip("objdump not installed (apt-get install binutils-multiarch)")
    code = barriers.CODE[arch][1]
    path = f"{tmp_path}/{arch}.bin"
    with open(path, "wb") as f:
        f.write(code)
    args = [tool, "-D", "-b", "binary", "-m", machine]
    if arch == "s390x":
        args += ["-EB"]
    elif arch != "x86_64" and arch != "i386":
        args += ["-EL"]
    out = subprocess.run(args + [path], capture_output=True, text=True)
    if out.returncode != 0 or "can't use supplied machine" in out.stderr or "unknown" in out.stderr:
        pytest.skip(f"{tool} cannot disassemble {machine}: {out.stderr.strip()[:200]}")
    text = out.stdout.lower()
    for word in expected:
        assert any(w in text for w in word.split("|")), f"{arch}: {word!r} not in\n{out.stdout}"
    assert hex(barriers.MAGIC)[2:] in text or str(barriers.MAGIC) in text, out.stdout
