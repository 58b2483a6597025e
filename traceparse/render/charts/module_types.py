"""Time by module type: self and inclusive bars."""

from __future__ import annotations

from typing import TYPE_CHECKING

from traceparse.render.charts.axes import hbar_axes, hbar_finish
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_module_types(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = hbar_axes(len(d["types"]), 1.6, 0.32)
    ax.barh(y - 0.2, d["total_ms"], height=0.4, color="#9ECAE9", label="inclusive (with sub-modules)")
    ax.barh(y + 0.2, d["self_ms"], height=0.4, color="#3A6EA5", label="self")
    for yi, s, t in zip(y, d["self_ms"], d["total_ms"], strict=True):
        ax.text(max(s, t), float(yi), f" self {s:.3f} · incl {t:.3f}", va="center", fontsize=7)
    more = f" (top {d['shown']} of {d['of']} by self time)" if d["of"] > d["shown"] else ""
    labels = [f"{t} ×{cnt:g}" for t, cnt in zip(d["types"], d["count"], strict=True)]
    hbar_finish(ax, y, labels, c.title + more, "GPU kernel time per step (ms)", d["total_ms"], 1.3, fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    return fig
