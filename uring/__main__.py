"""``uring probe``: what this kernel's io_uring supports;
``uring bench``: the block layer's engines measured, fio-style.
(``uring`` is the console script; ``python3 -m uring`` is the same command.)"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import abi, barriers


def cmd_probe(args: argparse.Namespace) -> int:
    from . import Ring, UringUnavailableError

    try:
        with Ring(1) as ring:
            probe = ring.probe()
            params = ring.params
            setup = ring.setup_flags
    except UringUnavailableError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"kernel      {os.uname().sysname} {os.uname().release} ({os.uname().machine})")
    print(f"last_op     {probe.last_op}")
    feats = [f.name for f in abi.IoringFeat if f.value and params.features & f.value]
    print(f"features    {' '.join(n.replace('IORING_FEAT_', '') for n in feats if n)}")
    names = [f.name for f in abi.IoringSetup if f.value and setup & f.value and f.name]
    print(f"setup       {' | '.join(names) or 0}  (the probe's own 1-entry ring: "
          f"sq={params.sq_entries} cq={params.cq_entries})")
    print(f"fence       {barriers.FENCE_KIND}")
    print()
    table = probe.table()
    known = {int(op) for op in abi.IoringOp}
    width = max(len(n) for n in table)
    for op in abi.IoringOp:
        if op.name == "IORING_OP_LAST":
            continue
        mark = "yes" if table[op.name] else "no"
        print(f"  {int(op):3d}  {op.name:<{width}}  {mark}")
    unknown = sorted(probe.supported - known)
    if unknown:
        print(f"  (kernel also supports opcodes unknown to this package: {unknown})")
    n = sum(table.values())
    print(f"\n{n} of {len(table)} opcodes supported")
    return 0


PROG = "uring"  # the console script's name, also under `python3 -m uring` (never "__main__.py")


def version() -> str:
    """The installed distribution's version, else the package's own ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("uring")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        package = sys.modules[__package__ or "uring"]
        return str(getattr(package, "__version__", None) or "unknown")


def _quiet_stdout() -> None:
    """stdout's reader is gone: what is still buffered goes to /dev/null
    (else the interpreter's last flush fails again, on exit)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test's capture)
        pass


def main(argv: Optional[List[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:  # fio's own option syntax: not argparse's
        from .bench import main as bench_main

        try:
            return bench_main(args_list[1:])
        except BrokenPipeError:  # `uring bench --help | head`
            _quiet_stdout()
            return 1
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").replace("``", ""))
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe", help="print the kernel version, features and the op table")
    sub.add_parser("bench", help="benchmark the block layer's engines with fio's options "
                   f"({PROG} bench --help)")
    args = parser.parse_args(args_list)
    if args.command == "probe":
        try:
            return cmd_probe(args)
        except BrokenPipeError:  # `uring probe | head`
            _quiet_stdout()
            return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
