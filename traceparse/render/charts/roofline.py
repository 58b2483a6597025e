"""The roofline chart: blocks and top operators as points (achieved TFLOP/s against FLOPs per
byte, log-log), the device's memory and compute roofs as lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from traceparse.render.charts.axes import figure, short
from traceparse.render.charts.style import kind_color
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_roofline(c: ChartData) -> Figure:
    d = c.data
    fig = figure(9.0, 5.6)
    ax = fig.subplots()
    peak, bw = d["peak_tflops"], d["peak_tbps"]
    xs = [p["x"] for p in d["blocks"] + d["ops"]]
    lo, hi = min([*xs, 0.01]) / 3, max([*xs, (peak or 1000.0) / bw]) * 3
    x = np.geomspace(lo, hi, 200)
    memory = bw * x  # TB/s × FLOP/byte = TFLOP/s
    roof = np.minimum(memory, peak) if peak else memory
    where = d["device"] or "device"
    label = f"{where}: {bw:g} TB/s" + (f", {peak:g} TFLOP/s {d['dtype']}" if peak else "")
    ax.plot(x, roof, color="#D62728", lw=1.8, label=label)
    for kind in dict.fromkeys(p["kind"] for p in d["blocks"]):
        pts = [p for p in d["blocks"] if p["kind"] == kind]
        xy = ([p["x"] for p in pts], [p["y"] for p in pts])
        ax.scatter(*xy, s=28, color=kind_color(kind), label=f"blocks: {kind}", zorder=3)
    for p in d["ops"]:
        ax.scatter([p["x"]], [p["y"]], marker="D", s=22, color="#333333", zorder=4)
        ax.annotate(short(p["operator"], 28), (p["x"], p["y"]), fontsize=6, xytext=(4, 2), textcoords="offset points")
    if d["ops"]:
        ax.scatter([], [], marker="D", s=22, color="#333333", label="operators (top by GPU time)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ys = [p["y"] for p in d["blocks"] + d["ops"]]
    ax.set_ylim(max(min([*ys, float(roof.min())]) / 3, 1e-6), (peak or float(roof.max())) * 2)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(c.title)
    ax.grid(which="both", alpha=0.25)
    ax.legend(loc="upper left", fontsize=8)
    return fig
