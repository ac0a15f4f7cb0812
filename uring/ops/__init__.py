"""Operations: one ``prep_*`` method per opcode, grouped as the kernel groups
them, and ``Ring``, the class users hold (the protocol core of
``uring.ring`` + ``uring.register`` + these).

- ``base``: what every prep shares (operands, the request record, the probe
  check, ``link()`` chains, ``completions()``);
- ``files``: reads, writes, syncs, space, splice, the file table;
- ``paths``: open, close, stat, rename, unlink, mkdir, links, xattrs;
- ``net``: sockets;
- ``control``: NOP, poll, timeouts, cancel, MSG_RING, futex, waitid,
  provided buffers, URING_CMD.
"""

from __future__ import annotations

from .base import AT_FDCWD, timespec
from .control import ControlOps
from .files import FileOps
from .net import NetOps
from .paths import PathOps

__all__ = ["AT_FDCWD", "Ring", "timespec"]


class Ring(FileOps, PathOps, NetOps, ControlOps):
    """An io_uring: ``with uring.Ring(64) as ring: ...``.

    See ``RingCore`` for the constructor's arguments and the protocol,
    ``RegisterMixin`` for registration; the op groups add the ``prep_*``
    methods.
    """
