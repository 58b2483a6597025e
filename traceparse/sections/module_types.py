"""Time by module type: calls, inclusive and self time of every module class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.attribute import factorize
from traceparse.report import Report, TypeRow
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms, safe_div
from traceparse.sections.context import Context
from traceparse.sections.roofline_ops import call_flops, roofline_of

TOP_N = 20  # bars in the chart


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[TypeRow]:
    calls, n_steps, kernel_us = ctx.attr.calls, ctx.n_steps, ctx.kernel_us
    # Inclusive time of a type counts each call once, but not a call nested in one of its own type.
    same_type_parent = np.zeros(len(calls), bool)
    par = calls.parent
    has = par >= 0
    cls_code, _ = calls.class_codes
    same_type_parent[has] = cls_code[par[has]] == cls_code[has]
    at = np.flatnonzero(ctx.call_in_steps)
    code, types = factorize(calls.cls[at].tolist())
    n = len(types)
    # bincount adds in row order, as a running float sum would.
    counts = np.bincount(code, minlength=n)
    slf = np.bincount(code, weights=ctx.self_all[at], minlength=n)
    outer = ~same_type_parent[at]
    tot = np.bincount(code[outer], weights=ctx.incl_all[at][outer], minlength=n)
    rows = []
    outer_calls = at[outer]
    for k, t in enumerate(types):
        count = int(counts[k]) / n_steps
        total = ms(float(tot[k]))
        cs = outer_calls[code[outer] == k].tolist()
        f = call_flops(ctx, cs)
        rate = safe_div(f, total * 1e9) if f is not None else None
        r = roofline_of(ctx, cs, f)
        rows.append(
            TypeRow(
                str(t),
                count,
                total,
                total / count if count else 0.0,
                ms(float(slf[k])),
                100.0 * float(slf[k]) / kernel_us if kernel_us else 0.0,
                flops=f,
                bytes=r.get("bytes"),
                tflops=rate,
                tbps=r.get("tbps"),
                intensity=r.get("intensity"),
                bound=r.get("bound"),
                roofline_pct=r.get("roofline_pct"),
            )
        )
    rows.sort(key=lambda r: (-r.self_ms, -r.total_ms))
    return rows


def charts(report: Report, _analysis: object) -> list[ChartData]:
    if not report.module_types:
        return []
    rows = report.module_types[:TOP_N]  # the report sorts them by self time
    return [
        ChartData(
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
    ]


SECTION = SectionSpec(
    key="module_types",
    compute=compute,
    table=TableSpec(
        title="types",
        shown=lambda r: bool(r.module_types),
        rows=lambda r, _lang: r.module_types,
        columns=(
            Column("type", lambda m, _u: m.type),
            Column("calls/step", lambda m, _u: f"{m.count:g}"),
            Column("total ms", lambda m, _u: f"{m.total_ms:.3f}"),
            Column("mean ms", lambda m, _u: f"{m.mean_ms:.4f}"),
            Column("self ms", lambda m, _u: f"{m.self_ms:.3f}"),
            Column("self share %", lambda m, _u: f"{m.self_share_pct:.1f}"),
        ),
    ),
    charts=charts,
)
