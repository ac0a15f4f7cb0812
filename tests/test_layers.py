"""The package's shape, checked from its source: layers import only
downwards, and ``RingCore``'s private state is touched by ``ring.py`` alone
(the op groups and the registration mixin are subclasses: they use the fill
primitive and the public surface, never ``self._sqe_tail`` and the like)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "uring"

#: ABI -> syscalls -> barriers -> ring -> ops/register -> block -> asyncio
#: -> tools, as ranks: a module may import its own rank and below.
RANKS = {
    "uring.abi": 0, "uring.errors": 0,
    "uring.syscalls": 1, "uring.faults": 1,
    "uring.barriers": 2, "uring.linux_aio": 2,
    "uring.request": 3, "uring.buffers": 3,
    "uring.ring": 4,
    "uring.register": 5, "uring.bufring": 5, "uring.probe": 5, "uring.ops": 5,
    "uring.model": 5, "uring.arena": 5,
    "uring.block": 6,
    "uring.asyncio": 7,
    "uring.bench": 8, "uring.__main__": 9, "uring": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rank(module: str) -> int:
    while module not in RANKS:
        if "." not in module:
            raise KeyError(module)
        module = module.rsplit(".", 1)[0]
    return RANKS[module]


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, module) for every import of a ``uring`` module in *path*."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "uring":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "uring":
                continue
            for alias in node.names:  # ``from . import abi``: the submodule
                if alias.name == "__version__":
                    continue  # the package's version string, not a layer
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if is_module(sub) else target


def sources() -> Iterator[Path]:
    yield from sorted(PKG.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in sources():
        rank(module_name(path))


def test_no_layer_imports_a_higher_one() -> None:
    wrong = []
    for path in sources():
        mod = module_name(path)
        for line, target in imports(path):
            if rank(target) > rank(mod):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mod} (layer {rank(mod)}) "
                             f"imports {target} (layer {rank(target)})")
    assert wrong == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself: ring importing ops would be reported."""
    assert rank("uring.ops.files") > rank("uring.ring")
    assert rank("uring.asyncio.driver") > rank("uring.block.image")


def ring_core_private_names() -> Set[str]:
    """Private attributes and methods of ``RingCore``, from ``ring.py``."""
    tree = ast.parse((PKG / "ring.py").read_text())
    core = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RingCore")
    names: Set[str] = set()
    for node in ast.walk(core):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_") \
                and not node.name.startswith("__"):
            names.add(node.name)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "self" and node.attr.startswith("_") \
                and not node.attr.startswith("__") and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def private_uses(path: Path, names: Set[str]) -> Dict[str, Set[int]]:
    found: Dict[str, Set[int]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.setdefault(node.attr, set()).add(node.lineno)
    return found


def test_ring_core_private_names_are_found() -> None:
    names = ring_core_private_names()
    assert {"_sqe_tail", "_requests", "_check", "_make_room", "_slot_shape"} <= names


@pytest.mark.parametrize("path", [p for p in sources() if p.name != "ring.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_ring_py_touches_ring_core_private_state(path: Path) -> None:
    """No module but ``ring.py`` reads or writes ``RingCore``'s private
    fields or calls its private methods, through ``self`` (a subclass: the
    op groups, registration) or any other name.  A name another class also
    uses for its own field is listed in ``OWN`` with that class."""
    names = ring_core_private_names() - OWN.get(path.relative_to(ROOT).as_posix(), set())
    assert private_uses(path, names) == {}


#: Private names that coincide with RingCore's but are the module's own
#: classes' fields (checked: none of these classes derives from RingCore).
OWN: Dict[str, Set[str]] = {
    "uring/asyncio/files.py": {"_fd", "_check"},  # the files' own fd and mode check
    "uring/asyncio/streams.py": {"_fd"},
    "uring/linux_aio.py": {"_check", "_fd", "_state", "_kernel"},
    "uring/block/engine_aio.py": {"_fd", "_check"},
    "uring/bench/workload.py": {"_hold"},
    "uring/model/kernel.py": {"_sqe_bytes", "_fd", "_state", "_check"},
    "uring/asyncio/driver.py": {"_drain"},
    "uring/block/image.py": {"_owner"},  # the image's own ThreadOwner
}
