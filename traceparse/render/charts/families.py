"""Kernel families: GPU time, stacked by the kind of block the kernels ran in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from traceparse.render.charts.axes import hbar_axes, hbar_finish
from traceparse.render.charts.style import OUTSIDE, kind_color
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_kernel_families(c: ChartData) -> Figure:
    d = c.data
    n = len(d["families"])
    fig, ax, y = hbar_axes(n, 1.8, 0.38)
    left = np.zeros(n)
    for k in d["kinds"]:
        vals = np.array(d["ms"][k])
        ax.barh(y, vals, left=left, color=kind_color(k), label="outside blocks" if k in OUTSIDE else k)
        left += vals
    for yi, v, s in zip(y, d["kernel_ms"], d["share_pct"], strict=True):
        ax.text(v, float(yi), f" {v:.3f} ms ({s:.1f}%)", va="center", fontsize=8)
    hbar_finish(ax, y, d["families"], c.title, "GPU kernel time per step (ms)", d["kernel_ms"], 1.3)
    ax.legend(title="block kind", fontsize=8, loc="lower right")
    return fig
