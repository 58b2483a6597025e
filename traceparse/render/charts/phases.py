"""GPU time by phase, with the decode time per token of each block in a generation trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from traceparse.render.charts.axes import figure, kind_handles
from traceparse.render.charts.style import PHASE_COLORS, kind_color
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_phases(c: ChartData) -> Figure:
    d = c.data
    per_token = "decode_blocks" in d
    fig = figure(11.0 if per_token else 9.0, 3.2 + 0.3 * len(d["phases"]))
    if per_token:
        ax, ax2 = fig.subplots(1, 2, width_ratios=[1, 1])
    else:
        ax = fig.subplots()
    y = np.arange(len(d["phases"]))
    kernel = np.array(d["kernel_ms"])
    unattr = np.minimum(np.array(d["unattributed_ms"]), kernel)
    colors = [PHASE_COLORS.get(p, "#999999") for p in d["phases"]]
    ax.barh(y, kernel - unattr, color=colors)
    ax.barh(y, unattr, left=kernel - unattr, color="#DDDDDD", hatch="//", edgecolor="#888888", label="outside modules")
    total = float(kernel.sum()) or 1.0
    for yi, v in zip(y, kernel, strict=True):
        ax.text(v, float(yi), f" {v:.2f} ms ({100 * v / total:.0f}%)", va="center", fontsize=8)
    ax.set_yticks(y, d["phases"])
    ax.invert_yaxis()
    ax.set_xlim(0, float(kernel.max()) * 1.3 if kernel.size else 1)
    ax.set_xlabel("GPU kernel time per step (ms)")
    ax.set_title(c.title)
    ax.legend(fontsize=8, loc="lower right")
    if per_token:
        xb = np.arange(len(d["decode_blocks"]))
        ax2.bar(xb, d["decode_ms_per_token"], color=[kind_color(k) for k in d["decode_kinds"]])
        ax2.set_xticks(xb, [str(b) for b in d["decode_blocks"]], fontsize=7)
        ax2.set_xlabel("block index")
        ax2.set_ylabel("decode GPU time per token (ms)")
        ax2.set_title("Decode: GPU ms per token, per block")
        ax2.grid(axis="y", alpha=0.3)
        ax2.legend(handles=kind_handles(d["decode_kinds"]), fontsize=8)
    return fig
