"""Operators and their rooflines: the GPU time of every op (what `key_averages()` shows, by the op
that owns each kernel), with FLOPs, bytes moved, TFLOP/s, TB/s, arithmetic intensity, the bound
and how far below it the op runs — per op name and per distinct shape (flops/roofline.py says how).
Also the roofline fields of blocks and module types, and the roofline chart."""

from __future__ import annotations

from collections import defaultdict
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
    if not ctx.gpu:
        return []
    ops, items, ev = ctx.ops, ctx.attr.items, ctx.attr.index.events
    keys = list(zip(ops.name.tolist(), ops.shape.tolist() if by_shape else [-1] * len(ops), strict=True))
    members: dict[tuple[str, int], list[int]] = defaultdict(list)
    for j, key in enumerate(keys):
        members[key].append(j)
    # The kernels each group launched, by time.
    kernel_us: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    has = np.flatnonzero(ops.item_op >= 0)
    kname = ev.name[items.event_row[has]]
    for i, j, k in zip(has.tolist(), ops.item_op[has].tolist(), kname.tolist(), strict=True):
        kernel_us[keys[j]][ev.names[k]] += float(items.dur[i])
    n = ctx.n_steps
    rows = []
    for key, js in members.items():
        us = ops.gpu_us[js]
        f, b = ops.flops[js], ops.bytes[js]
        flops = None if np.isnan(f).any() else float(f.sum()) / n
        byts = None if np.isnan(b).any() else float(b.sum()) / n
        gpu_ms = ms(float(us.sum())) / n
        peak = ctx.op_peak(ops.dtype[js[0]], bool(ops.tensor[js].any()))
        r = roofline(flops, byts, gpu_ms * 1e-3, peak, ctx.peak_tbps)
        by_time = sorted(kernel_us[key].items(), key=lambda kv: -kv[1])
        row: dict[str, Any] = {"operator": key[0]}
        if by_shape:
            row["shapes"] = _shapes(ctx, key[1])
        row |= {
            "calls": len(js) / n,
            "gpu_ms": gpu_ms,
            "share_pct": 100.0 * gpu_ms / ms(ctx.kernel_us) if ctx.kernel_us else 0.0,
            "mean_ms": ms(float(us.mean())),
            "min_ms": ms(float(us.min())),
            "max_ms": ms(float(us.max())),
            "std_ms": ms(float(us.std())),
            "kernels": [k for k, _ in by_time[:KERNELS]],
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
    return rows[:TOP]


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
