"""The slowest modules: the module instances with the most self GPU time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.attribute import factorize
from traceparse.report import ModuleRow, Report
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms
from traceparse.sections.context import Context

SLOWEST = 20  # rows by default (--top)


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[ModuleRow]:
    calls = ctx.attr.calls
    at = np.flatnonzero(ctx.call_in_steps)
    code, keys = factorize(list(zip(calls.qual[at].tolist(), calls.cls[at].tolist(), strict=True)))
    n = len(keys)
    slf = np.bincount(code, weights=ctx.self_all[at], minlength=n)
    inc = np.bincount(code, weights=ctx.incl_all[at], minlength=n)
    count = np.bincount(code, minlength=n)
    last = np.full(n, -1, np.int64)  # a module's block: that of its last call
    np.maximum.at(last, code, np.arange(at.size))
    blk = ctx.block_of_call[at][last].tolist()
    # The root scope "model" (XForCausalLM) and HF's inner "model" (XModel) share a name: a name
    # that several classes carry is shown with its class, "model (XForCausalLM)".
    classes: dict[str, set[str]] = {}
    for q, t in keys:
        classes.setdefault(str(q), set()).add(str(t))
    rows = [
        ModuleRow(
            f"{q} ({t})" if len(classes[str(q)]) > 1 else str(q),
            str(t),
            ms(float(slf[k])),
            ms(float(inc[k])),
            int(count[k]) / ctx.n_steps,
            blk[k] if blk[k] >= 0 else None,
        )
        for k, (q, t) in enumerate(keys)
    ]
    rows.sort(key=lambda r: (-r.self_ms, -r.inclusive_ms))
    return rows[: ctx.top]


def charts(report: Report, _analysis: object) -> list[ChartData]:
    rows = report.slowest_modules
    if not rows:
        return []
    kinds = {b.index: b.kind for b in report.blocks}
    return [
        ChartData(
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
    ]


SECTION = SectionSpec(
    key="slowest_modules",
    compute=compute,
    table=TableSpec(
        title="slowest",
        title_args=lambda r: {"n": len(r.slowest_modules)},
        shown=lambda r: bool(r.slowest_modules),
        rows=lambda r, _lang: r.slowest_modules,
        columns=(
            Column("module", lambda m, _u: m.name),
            Column("type", lambda m, _u: m.type),
            Column("self ms", lambda m, _u: f"{m.self_ms:.3f}"),
            Column("inclusive ms", lambda m, _u: f"{m.inclusive_ms:.3f}"),
            Column("calls/step", lambda m, _u: f"{m.calls:g}"),
        ),
    ),
    charts=charts,
)
