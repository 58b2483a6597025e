"""Top operators: the operator-level fallback when a trace has no module scopes (or no GPU: the
aten ops of a CPU capture, under its module scopes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from traceparse.load import CPU_OP
from traceparse.report import Report
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec, ms
from traceparse.sections.context import Context

SLOWEST = 20  # rows in the table
TOP_N = 20  # bars in the chart


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Time by the outermost CPU op around each item; backward items go to the forward operator
    they differentiate ("aten::linear (backward)")."""
    attr = ctx.attr
    if attr.mode not in ("operators", "cpu"):
        return []
    forest, ev = attr.index.forest, attr.index.events
    items = attr.items
    is_op = ev.kind[forest.rows] == CPU_OP
    # Module scopes are CPU ops too (record_function): without this, a CPU capture's every op
    # would roll up into the root scope. Operators are the aten ops under the scopes.
    scope = np.zeros(is_op.shape, bool)
    scope[attr.calls.pos[attr.calls.pos >= 0]] = True  # recovered calls have no interval
    is_op &= ~scope
    start = items.op.copy()
    has_anchor = items.anchor >= 0
    bwd_op = np.full(len(items), -1, np.int64)
    bwd_op[has_anchor] = attr.backward_op[items.anchor[has_anchor]]
    is_bwd = bwd_op >= 0
    start[is_bwd] = bwd_op[is_bwd]
    top = _outermost_op(forest.parent, is_op, start)
    at_scope = top >= 0
    at_scope[at_scope] = scope[top[at_scope]]
    top[at_scope] = -1  # a scope's own (Python) time is no operator's
    agg: dict[str, list[float]] = {}
    for i in np.flatnonzero(ctx.in_steps & (top >= 0)):
        name = ev.names[int(ev.name[forest.rows[top[i]]])] + (" (backward)" if is_bwd[i] else "")
        a = agg.setdefault(name, [0.0, 0.0])
        a[0] += float(items.dur[i])
        a[1] += 1
    rows: list[dict[str, Any]] = [
        {"operator": k, "kernel_ms": ms(v[0]) / ctx.n_steps, "items": v[1] / ctx.n_steps} for k, v in agg.items()
    ]
    rows.sort(key=lambda r: -float(r["kernel_ms"]))
    return rows[:SLOWEST]


def _outermost_op(parent: np.ndarray, is_op: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Walk each position up while its parent is still a CPU op."""
    top = start.copy()
    if not parent.size:  # a GPU-only trace: no CPU side to walk
        return top
    while True:
        par = np.where(top >= 0, parent[np.where(top >= 0, top, 0)], -1)
        up = (par >= 0) & is_op[np.where(par >= 0, par, 0)]
        if not up.any():
            return top
        top = np.where(up, par, top)


def charts(report: Report, _analysis: object) -> list[ChartData]:
    if not report.top_operators:
        return []
    rows = report.top_operators[:TOP_N]
    return [
        ChartData(
            "top_operators",
            "Top operators (GPU time of the kernels each launched)",
            "top_operators",
            {"operators": [str(r["operator"]) for r in rows], "ms": [float(r["kernel_ms"]) for r in rows]},
        )
    ]


SECTION = SectionSpec(
    key="top_operators",
    compute=compute,
    table=TableSpec(
        title="operators",
        shown=lambda r: bool(r.top_operators),
        rows=lambda r, _lang: r.top_operators,
        columns=(
            Column("operator", lambda o, _u: o["operator"]),
            Column("ms", lambda o, _u: f"{o['kernel_ms']:.3f}"),
            Column("items/step", lambda o, _u: f"{o['items']:g}"),
        ),
    ),
    charts=charts,
)
