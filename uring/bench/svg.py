"""``--svg FILE``: the engines side by side, as a chart for a README.

A hand-written SVG (no library): one horizontal bar of IOPS per cell, in
one group per cache mode (page cache, then O_DIRECT), each bar labelled
with its engine and ending in its rate (and, in the matrix, its multiple
of the synchronous loop's rate).  A mixed job's bar is split into its
read and write parts.  Each group has its own scale, so that the O_DIRECT
engines (a tenth of the page cache's rates, or less) stay readable.  A
cell that did not run keeps its label, with "not run" where its bar
would be.  Every bar is a ``rect`` of class ``bar`` with a ``title``,
inside a ``g`` of class ``cell`` named by ``data-label`` and ``data-cache``.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape, quoteattr

from .plan import CellResult
from .report import fmt_rate, mixed

__all__ = ["chart"]

_BAR = 18
_GAP = 6
_PLOT = 420  # px of the longest bar
_CHAR = 7.0  # px per character of a 12 px sans-serif label, roughly
_COLOURS = {"sync": "#8c8c8c", "threads": "#ff7f0e", "native": "#2ca02c",
            "io_uring": "#1f77b4"}
_WRITE = "#9ecae1"  # the write part of a mixed job's bar


def _label(result: CellResult, show_job: bool) -> str:
    cell = result.cell
    return f"{cell.job.name}: {cell.label}" if show_job else cell.label


def _iops(result: CellResult, direction: str) -> float:
    return sum(getattr(m, direction).ios / m.runtime for m in result.clones if m.runtime > 0)


def _value_text(result: CellResult, sync: Dict[object, float]) -> Tuple[str, str]:
    """(the rate, the ratio to the sync loop or "") at the end of a bar."""
    cell = result.cell
    total = result.iops
    value = f"{fmt_rate(total)} IOPS"
    if mixed(cell):
        value += f" (r {fmt_rate(_iops(result, 'read'))}, w {fmt_rate(_iops(result, 'write'))})"
    base = sync.get(cell.group)
    ratio = f"{total / base:.2f}x sync" if base and cell.slug != "sync" else ""
    return value, ratio


def chart(results: Sequence[CellResult], title: str, subtitle: Optional[str] = None) -> str:
    """The SVG document (text) of *results*' IOPS."""
    show_job = len({r.cell.job.name for r in results}) > 1
    groups: List[Tuple[str, List[CellResult]]] = []
    for direct, name in ((False, "page cache (buffered)"), (True, "O_DIRECT")):
        rows = [r for r in results if r.cell.job.direct == direct]
        if rows:
            groups.append((name, rows))
    sync: Dict[object, float] = {r.cell.group: r.iops for r in results
                                 if r.cell.slug == "sync" and r.cell.group is not None
                                 and not r.error}
    texts = {id(r): _value_text(r, sync) for r in results if not r.error and r.clones}
    labels = [_label(r, show_job) for r in results] or [""]
    left = 20 + int(_CHAR * max(len(s) for s in labels))
    right = max((len(v) + len(q) + 1 for v, q in texts.values()), default=10)
    width = max(left + _PLOT + 16 + int(_CHAR * right), 640)
    if subtitle is None:
        u = os.uname()
        subtitle = (f"IOPS, higher is better; Linux {u.release} ({u.machine}), "
                    f"{os.cpu_count()} CPUs; each group on its own scale")
        if any(mixed(r.cell) for r in results):
            subtitle += "; dark: reads, light: writes"
    body: List[str] = []
    y = 70
    for name, rows in groups:
        body.append(f'<text x="10" y="{y}" font-weight="bold">{escape(name)}</text>')
        y += 10
        top = max((r.iops for r in rows if id(r) in texts), default=0.0) or 1.0
        for r in rows:
            cell = r.cell
            label = _label(r, show_job)
            text_y = y + _BAR - 5
            body.append(f'<g class="cell" data-label={quoteattr(label)} '
                        f'data-cache={quoteattr("O_DIRECT" if cell.job.direct else "buffered")}>')
            body.append(f'<text x="{left - 8}" y="{text_y}" text-anchor="end">{escape(label)}</text>')
            if id(r) not in texts:
                body.append(f'<text x="{left + 4}" y="{text_y}" fill="#888">not run</text></g>')
                y += _BAR + _GAP
                continue
            colour = _COLOURS.get(cell.job.engine, "#1f77b4")
            total = r.iops
            w = max(1.0, _PLOT * total / top)
            value, ratio = texts[id(r)]
            tip = f"{label}: {total:.0f} IOPS"
            if mixed(cell):
                reads, writes = _iops(r, "read"), _iops(r, "write")
                tip += f" ({reads:.0f} read, {writes:.0f} write)"
                body.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" '
                            f'height="{_BAR}" fill="{_WRITE}"><title>{escape(tip)}</title></rect>')
                body.append(f'<rect x="{left}" y="{y}" width="{w * reads / total if total else 0.0:.1f}" '
                            f'height="{_BAR}" fill="{colour}"/>')
            else:
                body.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" '
                            f'height="{_BAR}" fill="{colour}"><title>{escape(tip)}</title></rect>')
            body.append(f'<text x="{left + w + 6:.1f}" y="{text_y}">{escape(value)}'
                        + (f'&#160;<tspan fill="#555">({escape(ratio)})</tspan>' if ratio else "")
                        + "</text></g>")
            y += _BAR + _GAP
        y += 24
    height = y + 10
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            '<rect width="100%" height="100%" fill="white"/>',
            f'<text x="10" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
            f'<text x="10" y="44" fill="#555">{escape(subtitle)}</text>']
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', *head, *body, "</svg>"]) + "\n"
