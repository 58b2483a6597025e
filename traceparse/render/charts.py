"""Charts of a report: PNG files (`analyze --charts DIR`) and SVG images for the HTML report.

Data first, drawing second: `chart_data()` returns, for each chart, exactly the numbers it plots —
taken from the Report, except the per-block split by kernel family, which the report does not
hold and `block_family_ms()` sums from the Analysis (kernels × families × blocks). `render_chart()`
lays one chart out with matplotlib's object API on the Agg canvas (no pyplot, no display), so
tests can compare what is drawn with the report.

Block kinds have one color in every chart (KIND_COLORS); kernel families and phases have theirs.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from traceparse.atomic import write_bytes_atomic
from traceparse.blocks import block_of_calls, find_blocks
from traceparse.errors import TraceparseError
from traceparse.kernels import FAMILIES, item_families
from traceparse.report import Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from traceparse.api import Analysis

KIND_COLORS = {
    "mamba": "#4C78A8",
    "attention": "#F58518",
    "mlp": "#54A24B",
    "decoder": "#B279A2",
    "moe": "#E45756",
    "other": "#72B7B2",
    "outside blocks": "#BAB0AC",
}
OUTSIDE = ("outside blocks", "none")  # the report's label for work outside every block (older: "none")
FAMILY_COLORS = {
    "gemm": "#1B9E77",
    "attention": "#D95F02",
    "elementwise": "#7570B3",
    "reduction": "#E7298A",
    "copy/memset": "#66A61E",
    "communication": "#E6AB02",
    "other": "#A6761D",
}
PHASE_COLORS = {
    "forward": "#4C78A8",
    "prefill": "#4C78A8",
    "decode": "#B279A2",
    "backward": "#F58518",
    "loss": "#E45756",
    "optimizer": "#54A24B",
    "zero_grad": "#72B7B2",
    "other": "#BAB0AC",
}
TOP_N = 20  # bars in the module-type and operator charts
DPI = 110


@dataclass(frozen=True)
class ChartData:
    """One chart: its file stem, title, the report section it illustrates, and the plotted numbers."""

    name: str
    title: str
    section: str
    data: dict[str, Any]


def kind_color(kind: str) -> str:
    if kind in OUTSIDE:
        return KIND_COLORS["outside blocks"]
    return KIND_COLORS.get(kind, KIND_COLORS["other"])


# ---- data ----------------------------------------------------------------------------------------


def block_family_ms(analysis: Analysis) -> dict[int, dict[str, float]]:
    """GPU kernel time per block and kernel family, ms per profiler step (inclusive of sub-modules).

    The same items the report's block rows sum (in a step, attributed to a call inside the block),
    so the families of a block add up to its `BlockRow.gpu_ms`.
    """
    attr = analysis.attribution
    calls, items, ev = attr.calls, attr.items, attr.index.events
    blocks = find_blocks(calls, analysis.trace.metadata.get("blocks_container"), analysis.attribution.inclusive_us())
    block_of_call = block_of_calls(calls, blocks.index_of_call)
    fam = item_families(ev.names, ev.name[items.event_row], ev.kind[items.event_row]).astype(np.int64)
    keep = (items.step >= 0) & (items.call >= 0)
    block = np.full(len(items), -1, np.int64)
    block[keep] = block_of_call[items.call[keep]]
    keep &= block >= 0
    nf = len(FAMILIES)
    key = block[keep] * nf + fam[keep]
    us = np.bincount(key, weights=items.dur[keep]) if key.size else np.zeros(0)
    out: dict[int, dict[str, float]] = {}
    for k in np.flatnonzero(us > 0):
        b, f = divmod(int(k), nf)
        out.setdefault(b, {})[FAMILIES[f]] = float(us[k]) / attr.n_steps / 1e3
    return out


def chart_data(report: Report, analysis: Analysis | None = None) -> list[ChartData]:
    """The charts this report supports, in display order; the per-family block chart needs `analysis`."""
    out: list[ChartData] = []
    if report.blocks and analysis is not None:
        out.append(_blocks_by_family(report, block_family_ms(analysis)))
    if any(b.tflops is not None for b in report.blocks):
        out.append(_blocks_tflops(report))
    if len(report.phases) > 1:
        out.append(_phases(report))
    if report.module_types:
        out.append(_module_types(report))
    if report.slowest_modules:
        out.append(_slowest_modules(report))
    if report.top_operators:
        out.append(_top_operators(report))
    if report.kernel_families:
        out.append(_kernel_families(report))
    return out


def _blocks_by_family(report: Report, by_family: dict[int, dict[str, float]]) -> ChartData:
    blocks = [b.index for b in report.blocks]
    totals = {f: sum(by_family.get(b, {}).get(f, 0.0) for b in blocks) for f in FAMILIES}
    families = [f for f in sorted(FAMILIES, key=lambda f: -totals[f]) if totals[f] > 0]
    return ChartData(
        "blocks_time_by_family",
        "GPU time per block, by kernel family",
        "blocks",
        {
            "blocks": blocks,
            "kinds": [b.kind for b in report.blocks],
            "families": families,
            "ms": {f: [by_family.get(b, {}).get(f, 0.0) for b in blocks] for f in families},
            "total_ms": [sum(by_family.get(b, {}).values()) for b in blocks],
            "report_gpu_ms": [b.gpu_ms for b in report.blocks],
        },
    )


def _blocks_tflops(report: Report) -> ChartData:
    g = report.general
    return ChartData(
        "blocks_tflops",
        "Achieved TFLOP/s per block (FLOPs / kernel time)",
        "blocks",
        {
            "blocks": [b.index for b in report.blocks],
            "kinds": [b.kind for b in report.blocks],
            "tflops": [b.tflops for b in report.blocks],
            "mfu_pct": [None if b.mfu is None else 100.0 * b.mfu for b in report.blocks],
            "peak_tflops": g.peak_tflops,
            "dtype": g.dtype,
            "device": g.device,
            "model_kernel_tflops": g.kernel_tflops,
        },
    )


def _phases(report: Report) -> ChartData:
    data: dict[str, Any] = {
        "phases": [p.phase for p in report.phases],
        "kernel_ms": [p.kernel_ms for p in report.phases],
        "unattributed_ms": [p.unattributed_ms for p in report.phases],
    }
    gen = report.generation or {}
    per_token = gen.get("decode_block_ms") or []
    if per_token:
        kinds = {b.index: b.kind for b in report.blocks}
        data["decode_blocks"] = [int(r["index"]) for r in per_token]
        data["decode_ms_per_token"] = [float(r["ms_per_token"]) for r in per_token]
        data["decode_kinds"] = [kinds.get(int(r["index"]), "other") for r in per_token]
    return ChartData("phases", "GPU kernel time by phase", "phases", data)


def _module_types(report: Report) -> ChartData:
    rows = report.module_types[:TOP_N]  # the report sorts them by self time
    return ChartData(
        "module_types",
        "Time by module type: self vs inclusive",
        "module_types",
        {
            "types": [r.type for r in rows],
            "self_ms": [r.self_ms for r in rows],
            "total_ms": [r.total_ms for r in rows],
            "count": [r.count for r in rows],
            "shown": len(rows),
            "of": len(report.module_types),
        },
    )


def _slowest_modules(report: Report) -> ChartData:
    kinds = {b.index: b.kind for b in report.blocks}
    rows = report.slowest_modules
    return ChartData(
        "slowest_modules",
        f"The {len(rows)} slowest modules (self GPU time)",
        "slowest_modules",
        {
            "modules": [r.name for r in rows],
            "types": [r.type for r in rows],
            "self_ms": [r.self_ms for r in rows],
            "inclusive_ms": [r.inclusive_ms for r in rows],
            "kinds": [kinds.get(r.block, "other") if r.block is not None else "outside blocks" for r in rows],
        },
    )


def _top_operators(report: Report) -> ChartData:
    rows = report.top_operators[:TOP_N]
    return ChartData(
        "top_operators",
        "Top operators (GPU time of the kernels each launched)",
        "top_operators",
        {"operators": [str(r["operator"]) for r in rows], "ms": [float(r["kernel_ms"]) for r in rows]},
    )


def _kernel_families(report: Report) -> ChartData:
    rows = report.kernel_families
    kinds = sorted({k for r in rows for k in r.by_block_kind}, key=lambda k: (k in OUTSIDE, k))
    return ChartData(
        "kernel_families",
        "GPU time by kernel family, split by block kind",
        "kernel_families",
        {
            "families": [r.family for r in rows],
            "kernel_ms": [r.kernel_ms for r in rows],
            "share_pct": [r.share_pct for r in rows],
            "kinds": kinds,
            "ms": {k: [r.by_block_kind.get(k, 0.0) for r in rows] for k in kinds},
        },
    )


# ---- drawing -------------------------------------------------------------------------------------


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TraceparseError("charts need matplotlib: pip install 'traceparse[charts]'") from None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _block_width(n: int) -> float:
    """Figure width (inches) that keeps one labeled tick per block readable, 56+ blocks included."""
    return min(max(8.0, 2.5 + 0.2 * n), 40.0)


def _block_ticks(ax: Axes, blocks: list[int]) -> None:
    step = max(1, math.ceil(len(blocks) / 100))
    ax.set_xticks(range(0, len(blocks), step))
    ax.set_xticklabels([str(b) for b in blocks[::step]], fontsize=7, rotation=90 if len(blocks) > 40 else 0)
    ax.set_xlim(-0.6, len(blocks) - 0.4)


def _bars(
    ax: Axes, x: np.ndarray, heights: np.ndarray, bottom: np.ndarray | None, colors: Any, width: float, label: str = ""
) -> Any:
    """Vertical bars as one PolyCollection: one artist for 56+ bars (ax.bar makes one patch each, slowly)."""
    from matplotlib.collections import PolyCollection

    b = np.zeros(len(x)) if bottom is None else np.asarray(bottom, float)
    h = np.asarray(heights, float)
    left, right = np.asarray(x, float) - width / 2, np.asarray(x, float) + width / 2
    verts = np.stack(
        [np.stack([left, b], 1), np.stack([left, b + h], 1), np.stack([right, b + h], 1), np.stack([right, b], 1)],
        axis=1,
    )
    coll = PolyCollection(list(verts), facecolors=colors, edgecolors="none", label=label or None)
    ax.add_collection(coll)
    if len(x):
        ax.update_datalim(
            [(float(left.min()), float(min(b.min(), (b + h).min()))), (float(right.max()), float((b + h).max()))]
        )
    ax.autoscale_view()
    return coll


def _kind_handles(kinds: list[str], extra: dict[str, str] | None = None) -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color=kind_color(k), label=(extra or {}).get(k, k)) for k in dict.fromkeys(kinds)]


def _hbar_axes(n: int, base: float, per_row: float) -> tuple[Figure, Axes, np.ndarray]:
    """A horizontal-bar chart of n rows: the figure, its axes and the rows' y positions."""
    fig = _figure(10.0, base + per_row * n)
    return fig, fig.subplots(), np.arange(n)


def _hbar_finish(
    ax: Axes, y: np.ndarray, labels: list[str], title: str, xlabel: str, widest: Any, room: float, **label_style: Any
) -> None:
    """Row labels (first row on top), titles, grid, and room right of the widest bar for its label."""
    ax.set_yticks(y, labels, **label_style)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(max(widest, default=0.0), 1e-9) * room)


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _draw_blocks_by_family(c: ChartData) -> Figure:
    d = c.data
    n = len(d["blocks"])
    fig = _figure(_block_width(n), 5.2)
    ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[14, 1])
    x = np.arange(n)
    bottom = np.zeros(n)
    for f in d["families"]:
        vals = np.array(d["ms"][f])
        _bars(ax, x, vals, bottom, FAMILY_COLORS.get(f, "#999999"), 0.8, f)
        bottom += vals
    ax.set_ylim(0, max(float(bottom.max()) if n else 0.0, 1e-9) * 1.05)
    ax.set_ylabel("GPU kernel time per step (ms)")
    ax.set_title(c.title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="kernel family", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _bars(strip, x, np.ones(n), None, [kind_color(k) for k in d["kinds"]], 1.0)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.set_ylabel("kind", rotation=0, ha="right", va="center", fontsize=8)
    strip.set_xlabel("block index")
    strip.legend(
        handles=_kind_handles(d["kinds"]), title="block kind", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8
    )
    _block_ticks(strip, d["blocks"])
    return fig


def _draw_blocks_tflops(c: ChartData) -> Figure:
    d = c.data
    n = len(d["blocks"])
    fig = _figure(_block_width(n), 5.0)
    ax = fig.subplots()
    x = np.arange(n)
    vals = np.array([np.nan if v is None else v for v in d["tflops"]], dtype=float)
    _bars(ax, x, np.nan_to_num(vals), None, [kind_color(k) for k in d["kinds"]], 0.8)
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
    handles = _kind_handles(d["kinds"], labels)
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
    _block_ticks(ax, d["blocks"])
    return fig


def _barh_labels(ax: Axes, y: np.ndarray, vals: list[float], fmt: str = "{:.3f}") -> None:
    for yi, v in zip(y, vals, strict=True):
        ax.text(v, float(yi), " " + fmt.format(v), va="center", ha="left", fontsize=7)


def _draw_phases(c: ChartData) -> Figure:
    d = c.data
    per_token = "decode_blocks" in d
    fig = _figure(11.0 if per_token else 9.0, 3.2 + 0.3 * len(d["phases"]))
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
        ax2.legend(handles=_kind_handles(d["decode_kinds"]), fontsize=8)
    return fig


def _draw_module_types(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = _hbar_axes(len(d["types"]), 1.6, 0.32)
    ax.barh(y - 0.2, d["total_ms"], height=0.4, color="#9ECAE9", label="inclusive (with sub-modules)")
    ax.barh(y + 0.2, d["self_ms"], height=0.4, color="#3A6EA5", label="self")
    for yi, s, t in zip(y, d["self_ms"], d["total_ms"], strict=True):
        ax.text(max(s, t), float(yi), f" self {s:.3f} · incl {t:.3f}", va="center", fontsize=7)
    more = f" (top {d['shown']} of {d['of']} by self time)" if d["of"] > d["shown"] else ""
    labels = [f"{t} ×{cnt:g}" for t, cnt in zip(d["types"], d["count"], strict=True)]
    _hbar_finish(ax, y, labels, c.title + more, "GPU kernel time per step (ms)", d["total_ms"], 1.3, fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _draw_slowest_modules(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = _hbar_axes(len(d["modules"]), 1.6, 0.3)
    colors = [kind_color(k) for k in d["kinds"]]
    ax.barh(y, d["inclusive_ms"], height=0.75, color=colors, alpha=0.3)
    ax.barh(y, d["self_ms"], height=0.45, color=colors)
    _barh_labels(ax, y, d["inclusive_ms"])
    labels = [f"{_short(m)} ({t})" for m, t in zip(d["modules"], d["types"], strict=True)]
    xlabel = "GPU kernel time per step (ms): self (solid), inclusive (light)"
    _hbar_finish(ax, y, labels, c.title, xlabel, d["inclusive_ms"], 1.15, fontsize=7)
    ax.legend(
        handles=_kind_handles(d["kinds"]), title="block kind", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1)
    )
    return fig


def _draw_top_operators(c: ChartData) -> Figure:
    d = c.data
    fig, ax, y = _hbar_axes(len(d["operators"]), 1.6, 0.3)
    ax.barh(y, d["ms"], color="#3A6EA5")
    _barh_labels(ax, y, d["ms"])
    labels = [_short(o, 60) for o in d["operators"]]
    _hbar_finish(ax, y, labels, c.title, "GPU kernel time per step (ms)", d["ms"], 1.15, fontsize=7)
    return fig


def _draw_kernel_families(c: ChartData) -> Figure:
    d = c.data
    n = len(d["families"])
    fig, ax, y = _hbar_axes(n, 1.8, 0.38)
    left = np.zeros(n)
    for k in d["kinds"]:
        vals = np.array(d["ms"][k])
        ax.barh(y, vals, left=left, color=kind_color(k), label="outside blocks" if k in OUTSIDE else k)
        left += vals
    for yi, v, s in zip(y, d["kernel_ms"], d["share_pct"], strict=True):
        ax.text(v, float(yi), f" {v:.3f} ms ({s:.1f}%)", va="center", fontsize=8)
    _hbar_finish(ax, y, d["families"], c.title, "GPU kernel time per step (ms)", d["kernel_ms"], 1.3)
    ax.legend(title="block kind", fontsize=8, loc="lower right")
    return fig


_DRAW = {
    "blocks_time_by_family": _draw_blocks_by_family,
    "blocks_tflops": _draw_blocks_tflops,
    "phases": _draw_phases,
    "module_types": _draw_module_types,
    "slowest_modules": _draw_slowest_modules,
    "top_operators": _draw_top_operators,
    "kernel_families": _draw_kernel_families,
}


def draw_chart(chart: ChartData) -> Figure:
    """The chart as a matplotlib Figure on an Agg canvas (no pyplot state, no display)."""
    _require_matplotlib()
    return _DRAW[chart.name](chart)


def render_chart(chart: ChartData, fmt: str = "png") -> bytes:
    """The chart as PNG or SVG bytes (deterministic: no dates, fixed SVG ids, text as paths)."""
    fig = draw_chart(chart)
    import matplotlib

    buf = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "traceparse", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def write_charts(report: Report, directory: str | Path, analysis: Analysis | None = None) -> list[Path]:
    """Write every chart as `<directory>/<name>.png` (atomically); returns the paths written."""
    _require_matplotlib()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TraceparseError(f"--charts {directory}: exists and is not a directory")
    written = []
    for chart in chart_data(report, analysis):
        path = directory / f"{chart.name}.png"
        write_bytes_atomic(path, render_chart(chart, "png"))
        written.append(path)
    return written
