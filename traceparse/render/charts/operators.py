"""Top operators: the GPU time of the kernels each launched."""

from __future__ import annotations

from typing import TYPE_CHECKING

from traceparse.render.charts.axes import barh_labels, hbar_axes, hbar_finish, short
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_top_operators(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = hbar_axes(len(d["operators"]), 1.6, 0.3)
    ax.barh(y, d["ms"], color="#3A6EA5")
    barh_labels(ax, y, d["ms"])
    labels = [short(o, 60) for o in d["operators"]]
    hbar_finish(ax, y, labels, c.title, "GPU kernel time per step (ms)", d["ms"], 1.15, fontsize=7)
    return fig
