"""The per-block charts: GPU time by kernel family, and achieved TFLOP/s against the peak."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.render.charts.axes import bars, block_ticks, block_width, figure, kind_handles
from traceparse.render.charts.style import FAMILY_COLORS, kind_color
from traceparse.sections.base import ChartData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_blocks_by_family(c: ChartData) -> Figure:
    d = c.data
    n = len(d["blocks"])
    fig = figure(block_width(n), 5.2)
    ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[14, 1])
    x = np.arange(n)
    bottom = np.zeros(n)
    for f in d["families"]:
        vals = np.array(d["ms"][f])
        bars(ax, x, vals, bottom, FAMILY_COLORS.get(f, "#999999"), 0.8, f)
        bottom += vals
    ax.set_ylim(0, max(float(bottom.max()) if n else 0.0, 1e-9) * 1.05)
    ax.set_ylabel("GPU kernel time per step (ms)")
    ax.set_title(c.title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="kernel family", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    bars(strip, x, np.ones(n), None, [kind_color(k) for k in d["kinds"]], 1.0)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_ylabel("kind", rotation=0, ha="right", va="center", fontsize=8)
    strip.set_xlabel("block index")
    strip.legend(
        handles=kind_handles(d["kinds"]), title="block kind", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8
    )
    block_ticks(strip, d["blocks"])
    return fig


def draw_blocks_tflops(c: ChartData) -> Figure:
    d = c.data
    n = len(d["blocks"])
    fig = figure(block_width(n), 5.0)
    ax = fig.subplots()
    x = np.arange(n)
    vals = np.array([np.nan if v is None else v for v in d["tflops"]], dtype=float)
    bars(ax, x, np.nan_to_num(vals), None, [kind_color(k) for k in d["kinds"]], 0.8)
    for xi, v in zip(x, vals, strict=True):
        label = "?" if np.isnan(v) else f"{v:.0f}" if v >= 100 else f"{v:.1f}"
        ax.text(
            float(xi),
            0 if np.isnan(v) else v,
            label,
            ha="center",
            va="bottom",
            fontsize=6,
            rotation=90 if n > 24 else 0,
        )
    labels = {}
    for kind in dict.fromkeys(d["kinds"]):
        mine = [v for v, k in zip(vals, d["kinds"], strict=True) if k == kind and not np.isnan(v)]
        if mine:
            labels[kind] = f"{kind}: median {float(np.median(mine)):.1f} TFLOP/s ({len(mine)} blocks)"
    handles = kind_handles(d["kinds"], labels)
    peak = d["peak_tflops"]
    top = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
    if peak:
        where = f"{d['dtype']} dense peak" + (f", {d['device']}" if d["device"] else "")
        handles.append(ax.axhline(peak, color="#D62728", ls="--", lw=1.5, label=f"{where}: {peak:.0f} TFLOP/s"))
        top = max(top, peak)

        def to_mfu(t: Any) -> Any:
            return 100.0 * np.asarray(t) / peak

        def from_mfu(m: Any) -> Any:
            return np.asarray(m) * peak / 100.0

        sec = ax.secondary_yaxis("right", functions=(to_mfu, from_mfu))
        sec.set_ylabel("MFU (% of peak)")
    if d["model_kernel_tflops"]:
        handles.append(
            ax.axhline(
                d["model_kernel_tflops"],
                color="#555555",
                ls=":",
                lw=1.2,
                label=f"whole model: {d['model_kernel_tflops']:.1f} TFLOP/s",
            )
        )
    ax.set_ylim(0, top * 1.08)
    ax.set_ylabel("TFLOP/s (FLOPs / kernel time)")
    ax.set_xlabel("block index")
    ax.set_title(c.title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.07, 1.0), fontsize=8)
    block_ticks(ax, d["blocks"])
    return fig
