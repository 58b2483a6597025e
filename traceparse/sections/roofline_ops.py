"""Operators and their rooflines: the GPU time of every op (what `key_averages()` shows, by the op
that owns each kernel), with FLOPs, bytes moved, TFLOP/s, TB/s, arithmetic intensity, the bound
and how far below it the op runs — per op name and per distinct shape (flops/roofline.py says how).
Also the roofline fields of blocks and module types, and the roofline chart."""

from __future__ import annotations

from typing import Any

import numpy as np

from traceparse.flops.roofline import roofline
from traceparse.rates import flops_known
from traceparse.report import Report
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms, num, safe_div
from traceparse.sections.context import Context

TOP = 25  # rows in each table and the JSON
KERNELS = 3  # kernel names kept per op (most time first)
CHART_OPS = 12  # op points in the chart


def call_flops(ctx: Context, cs: list[int]) -> float | None:
    """Tensor FLOPs per step of some calls, inclusive (null when unknown, as a block's)."""
    total_us = float(ctx.incl_all[cs].sum())
    if not ctx.has_shapes or not flops_known(float(ctx.call_uncounted_us[cs].sum()), total_us):
        return None
    return float(ctx.call_flops[cs].sum())


def roofline_of(ctx: Context, cs: list[int], flops: float | None) -> dict[str, Any]:
    """The roofline fields of some calls' inclusive work (a block, a module type). Their bytes are
    known when at most 2 % of their kernel time ran in ops of unknown bytes, as FLOPs are; the
    compute roof is the report's peak (the GEMMs' dtype, as MFU's)."""
    if not ctx.gpu or not cs:
        return {}
    byts, known_us = ctx.call_bytes
    total_us = float(ctx.incl_all[cs].sum())
    known = float(known_us[cs].sum())
    b = float(byts[cs].sum()) if ctx.has_shapes and flops_known(total_us - known, total_us) else None
    r = roofline(flops, b, total_us * 1e-6, ctx.peak, ctx.peak_tbps)
    return {
        "bytes": b,
        "tbps": r.tbps,
        "intensity": r.intensity,
        "bound": r.bound,
        "roofline_pct": r.roofline_pct,
        "bytes_coverage": safe_div(known, total_us),
    }


def _groups(ctx: Context, by_shape: bool) -> list[dict[str, Any]]:
    """The TOP groups of op instances (by name, or name and shapes) by GPU time. Group sums are
    bincounts over group codes, so a million-event trace's ~100k ops cost no Python loop; only
    the rows shown are built one by one."""
    if not ctx.gpu or not len(ctx.ops.name):
        return []
    ops, items, ev = ctx.ops, ctx.attr.items, ctx.attr.index.events
    shape = ops.shape if by_shape else np.full(len(ops.name), -1)
    # group codes in order of first appearance, from integer keys (no Python tuple per op)
    group_key = ops.name_id * (int(shape.max()) + 2) + (shape + 1)
    _, first_at, code = np.unique(group_key, return_index=True, return_inverse=True)
    order = np.argsort(first_at, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    code = rank[code.reshape(-1)]
    keys = [(str(ops.name[i]), int(shape[i])) for i in first_at[order].tolist()]
    g = len(keys)
    count = np.bincount(code, minlength=g)
    us_sum = np.bincount(code, weights=ops.gpu_us, minlength=g)
    # two passes: the spread around each group's mean (E[x²] − mean² cancels badly for µs times)
    us_mean = us_sum / np.maximum(count, 1)
    us_var = np.bincount(code, weights=(ops.gpu_us - us_mean[code]) ** 2, minlength=g) / np.maximum(count, 1)
    us_min = np.full(g, np.inf)
    us_max = np.zeros(g)
    np.minimum.at(us_min, code, ops.gpu_us)
    np.maximum.at(us_max, code, ops.gpu_us)
    f_nan = np.bincount(code, weights=np.isnan(ops.flops), minlength=g) > 0
    b_nan = np.bincount(code, weights=np.isnan(ops.bytes), minlength=g) > 0
    f_sum = np.bincount(code, weights=np.nan_to_num(ops.flops), minlength=g)
    b_sum = np.bincount(code, weights=np.nan_to_num(ops.bytes), minlength=g)
    tensor = np.bincount(code, weights=ops.tensor.astype(float), minlength=g) > 0
    first = np.full(g, len(code))
    np.minimum.at(first, code, np.arange(len(code)))
    top = np.argsort(-us_sum, kind="stable")[:TOP]
    # The kernels each shown group launched, by time: (group, kernel name) pairs summed at once.
    has = np.flatnonzero(ops.item_op >= 0)
    item_group = code[ops.item_op[has]]
    kname = ev.name[items.event_row[has]].astype(np.int64)
    pair, pair_us = np.unique(item_group * len(ev.names) + kname, return_inverse=True)
    pair_sum = np.bincount(pair_us, weights=items.dur[has])
    n = ctx.n_steps
    rows = []
    for k in top.tolist():
        flops = None if f_nan[k] else float(f_sum[k]) / n
        byts = None if b_nan[k] else float(b_sum[k]) / n
        gpu_ms = ms(float(us_sum[k])) / n
        peak = ctx.op_peak(ops.dtype[first[k]], bool(tensor[k]))
        r = roofline(flops, byts, gpu_ms * 1e-3, peak, ctx.peak_tbps)
        mine = np.flatnonzero(pair // len(ev.names) == k)
        by_time = mine[np.argsort(-pair_sum[mine], kind="stable")][:KERNELS]
        row: dict[str, Any] = {"operator": keys[k][0]}
        if by_shape:
            row["shapes"] = _shapes(ctx, keys[k][1])
        row |= {
            "calls": int(count[k]) / n,
            "gpu_ms": gpu_ms,
            "share_pct": 100.0 * gpu_ms / ms(ctx.kernel_us) if ctx.kernel_us else 0.0,
            "mean_ms": ms(float(us_mean[k])),
            "min_ms": ms(float(us_min[k])),
            "max_ms": ms(float(us_max[k])),
            "std_ms": ms(float(np.sqrt(us_var[k]))),
            "kernels": [ev.names[int(p % len(ev.names))] for p in pair[by_time].tolist()],
            "flops": flops,
            "bytes": byts,
            "tflops": r.tflops,
            "tbps": r.tbps,
            "intensity": r.intensity,
            "bound": r.bound,
            "roofline_pct": r.roofline_pct,
            "peak_tflops": peak,
        }
        rows.append(row)
    rows.sort(key=lambda r: (-r["gpu_ms"], r["operator"]))
    return rows


def _shapes(ctx: Context, sid: int) -> str | None:
    """The op's `Input Dims` as recorded (null when the trace kept none)."""
    if sid < 0:
        return None
    dims = ctx.attr.index.events.shapes[sid].dims
    return bytes(dims).decode("utf-8", "replace") if dims is not None else None


def charts(report: Report, _analysis: object) -> list[ChartData]:
    g = report.general
    blocks = [b for b in report.blocks if b.intensity and b.tflops]
    ops = [o for o in report.operators if o["intensity"] and o["tflops"]][:CHART_OPS]
    if not g.peak_tbps or not (blocks or ops):
        return []
    return [
        ChartData(
            "roofline",
            "Roofline: achieved TFLOP/s against arithmetic intensity",
            "operators",
            {
                "peak_tflops": g.peak_tflops,
                "peak_tbps": g.peak_tbps,
                "dtype": g.dtype,
                "device": g.device,
                "blocks": [{"index": b.index, "kind": b.kind, "x": b.intensity, "y": b.tflops} for b in blocks],
                "ops": [
                    {"operator": o["operator"], "x": o["intensity"], "y": o["tflops"], "peak": o["peak_tflops"]}
                    for o in ops
                ],
            },
        )
    ]


def _gb(v: float | None, u: str) -> str:
    return num(None if v is None else v / 1e9, "{:.3f}", u)


_ROOF_COLUMNS = (
    Column("GFLOPs", lambda o, u: num(None if o["flops"] is None else o["flops"] / 1e9, "{:.2f}", u)),
    Column("GB", lambda o, u: _gb(o["bytes"], u)),
    Column("TFLOP/s", lambda o, u: num(o["tflops"], "{:.2f}", u)),
    Column("TB/s", lambda o, u: num(o["tbps"], "{:.2f}", u)),
    Column("FLOP/B", lambda o, u: num(o["intensity"], "{:.2f}", u)),
    Column("bound", lambda o, u: o["bound"] or u),
    Column("roofline %", lambda o, u: num(o["roofline_pct"], "{:.1f}", u)),
)

SECTION = SectionSpec(
    key="operators",
    compute=lambda ctx, _done: _groups(ctx, by_shape=False),
    table=TableSpec(
        title="op_roofline",
        title_args=lambda r: {"n": len(r.operators)},
        shown=lambda r: bool(r.operators),
        rows=lambda r, _lang: r.operators,
        columns=(
            Column("operator", lambda o, _u: o["operator"]),
            Column("calls/step", lambda o, _u: f"{o['calls']:g}"),
            Column("gpu ms", lambda o, _u: f"{o['gpu_ms']:.3f}"),
            Column("share %", lambda o, _u: f"{o['share_pct']:.1f}"),
            Column("mean ms", lambda o, _u: f"{o['mean_ms']:.4f}"),
            Column("min ms", lambda o, _u: f"{o['min_ms']:.4f}"),
            Column("max ms", lambda o, _u: f"{o['max_ms']:.4f}"),
            Column("std ms", lambda o, _u: f"{o['std_ms']:.4f}"),
            *_ROOF_COLUMNS,
            Column("kernel", lambda o, _u: o["kernels"][0][:60] if o["kernels"] else ""),
        ),
    ),
    charts=charts,
)

SHAPES_SECTION = SectionSpec(
    key="operator_shapes",
    compute=lambda ctx, _done: _groups(ctx, by_shape=True),
    table=TableSpec(
        title="op_shapes",
        title_args=lambda r: {"n": len(r.operator_shapes)},
        shown=lambda r: bool(r.operator_shapes),
        rows=lambda r, _lang: r.operator_shapes,
        columns=(
            Column("operator", lambda o, _u: o["operator"]),
            Column("shapes", lambda o, u: (o["shapes"] or u)[:70]),
            Column("calls/step", lambda o, _u: f"{o['calls']:g}"),
            Column("gpu ms", lambda o, _u: f"{o['gpu_ms']:.3f}"),
            Column("mean ms", lambda o, _u: f"{o['mean_ms']:.4f}"),
            *_ROOF_COLUMNS,
        ),
    ),
)
