"""A thin block layer in the spirit of QEMU's ``-drive aio=...,cache=...``.

    from uring import block
    with block.open_image("disk.img", aio="io_uring", cache="none") as img:
        data = img.pread(4096, 0)
        img.pwrite(data, 8192)
        img.flush()

Three engines behind one interface (``uring/block/engine.py``):
``io_uring`` (this package's ring), ``native`` (Linux AIO through the raw
system calls) and ``threads`` (a worker pool doing ``preadv``/``pwritev``).
"""

from .engine import Capability
from .faults import IoFaults
from .image import CACHE_MODES, ENGINES, BlockArena, Image, open_image
from .request import BlockRequest, Op

__all__ = ["CACHE_MODES", "ENGINES", "BlockArena", "BlockRequest", "Capability", "Image", "IoFaults",
           "Op", "open_image"]
