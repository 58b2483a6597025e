"""The slowest modules: self and inclusive time, colored by block kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from traceparse.render.charts.axes import barh_labels, hbar_axes, hbar_finish, kind_handles, short
from traceparse.render.charts.style import kind_color
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_slowest_modules(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = hbar_axes(len(d["modules"]), 1.6, 0.3)
    colors = [kind_color(k) for k in d["kinds"]]
    ax.barh(y, d["inclusive_ms"], height=0.75, color=colors, alpha=0.3)
    ax.barh(y, d["self_ms"], height=0.45, color=colors)
    barh_labels(ax, y, d["inclusive_ms"])
    labels = [f"{short(m)} ({t})" for m, t in zip(d["modules"], d["types"], strict=True)]
    xlabel = "GPU kernel time per step (ms): self (solid), inclusive (light)"
    hbar_finish(ax, y, labels, c.title, xlabel, d["inclusive_ms"], 1.15, fontsize=7)
    ax.legend(handles=kind_handles(d["kinds"]), title="block kind", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return fig
