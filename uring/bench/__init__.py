"""``python3 -m uring bench``: a fio-compatible benchmark of ``uring.block``.

Modules, one job each: ``options`` (fio's option names and job files, and
the refusal of what is not supported), ``plan`` (the jobs as asked, or the
side-by-side matrix of engines), ``files`` (the file under test and the
page cache around it), ``workload`` (the timed loops and what they
measure), ``stats`` (latency percentiles and buckets), ``runner`` (running
the cells: warming, clones, progress, cleanup), ``report`` (the table and
fio's JSON) and ``cli`` (the command).
"""

from .cli import main

__all__ = ["main"]
